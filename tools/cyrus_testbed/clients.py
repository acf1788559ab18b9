"""Real protocol clients for the tests and the benchmark: IMAP and POP3 from the host through
published ports, LMTP run inside the container. No protocol is simulated."""

import functools
import imaplib
import json
import shlex
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from .machine import DebianContainer

LMTP_SOCKET = "/run/cyrus/socket/lmtp"
# Not under /tmp: systemd mounts a tmpfs there, over what docker writes.
TEST_FILES = "/usr/local/lib/cyrus-tests"
LMTP_CLIENT = f"{TEST_FILES}/lmtp_client.py"
FUZZ_CLIENT = f"{TEST_FILES}/fuzz_client.py"
SERVERNAME = "mail.example.test"
FUZZ_DEADLINE_S = 120


@dataclass(frozen=True)
class LmtpReplies:
    """What the server answered in one LMTP transaction (lmtp_client.py's JSON): MAIL, RCPT
    per recipient and, per accepted recipient, DATA (RFC 2033); `session` holds the replies
    before the transaction (greeting, LHLO, STARTTLS, AUTH) when the session had one."""

    mail: str
    rcpt: dict[str, str]
    data: dict[str, str]
    session: dict[str, str]
    file: str = ""  # the message file, when a session streamed several

    @classmethod
    def from_json(cls, line: str) -> "LmtpReplies":
        fields = json.loads(line)
        transaction = {key: fields.pop(key) for key in ("mail", "rcpt", "data")}
        file = fields.pop("file", "")
        fields.pop("data_start", None)
        return cls(**transaction, session=fields, file=file)

    def delivered_to(self, recipient: str) -> bool:
        """lmtpd acknowledged the message for this recipient (250 after DATA)."""
        return self.data.get(recipient, "").startswith("250")

    def delivered_to_all(self) -> bool:
        return all(self.delivered_to(recipient) for recipient in self.rcpt)

    def final_reply(self, recipient: str) -> str:
        """The reply that settled the recipient: after DATA, or the RCPT that refused it."""
        return self.data.get(recipient, self.rcpt[recipient])

    def first_refusal(self) -> str:
        """The reply that stopped the delivery: at MAIL, at RCPT or after DATA."""
        steps = [self.mail, *self.rcpt.values(), *self.data.values()]
        return next(step for step in steps if not step.startswith("2"))


@dataclass(frozen=True)
class CyrusUsers:
    admin: str
    admin_password: str
    passwords: dict[str, str]


def provisioned_users(names: Iterable[str]) -> CyrusUsers:
    """The users provision_users gives a machine, with their passwords."""
    return CyrusUsers("cyrus", "admin-secret", {name: f"{name}-secret" for name in names})


def provision_users(
    machine: DebianContainer, names: Iterable[str] = ("alice", "bob")
) -> CyrusUsers:
    """sasldb users (admin cyrus, and alice and bob unless named otherwise) with their
    INBOXes, created over IMAP; each password is NAME-secret."""
    # saslpasswd2 files users under a realm, Cyrus looks them up under
    # servername: pin both (README.Debian, Authentication). A key given
    # twice is fatal, so add only what is missing (Debian's own 3.x
    # packages ship no admins: line).
    machine.check(
        "grep -q '^servername:' /etc/imapd.conf"
        f" || echo 'servername: {SERVERNAME}' >> /etc/imapd.conf;"
        " grep -q '^admins:' /etc/imapd.conf || echo 'admins: cyrus' >> /etc/imapd.conf"
    )
    users = provisioned_users(names)
    for name, password in {users.admin: users.admin_password, **users.passwords}.items():
        machine.check(f"echo {shlex.quote(password)} | saslpasswd2 -p -c -u {SERVERNAME} {name}")
    restart = machine.service("restart")
    assert restart.ok, f"restart after provisioning failed: {restart.output}"
    machine.wait_for_tcp(143)
    imap = imap_login(machine, users.admin, users.admin_password)
    separator = hierarchy_separator(imap)
    for name in users.passwords:
        status, data = imap.create(f"user{separator}{name}")
        assert status == "OK", data
    imap.logout()
    return users


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One context for every connection. The snakeoil certificate is self-signed for the
    container's name, so nothing is verified, and loading the system's CA store (75 ms,
    as create_default_context does) would only slow every connection down."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def imap_connect(machine: DebianContainer, *, starttls: bool = True) -> imaplib.IMAP4:
    """Connect to port 143; with starttls, upgrade to TLS whenever the server offers it
    (ours always does; Debian's own 3.10 does not by default)."""
    imap = imaplib.IMAP4("127.0.0.1", machine.port(143), timeout=30)
    if starttls and "STARTTLS" in imap.capabilities:
        imap.starttls(tls_context())
    return imap


def imaps_connect(machine: DebianContainer) -> imaplib.IMAP4_SSL:
    """Connect to port 993, TLS from the first byte."""
    return imaplib.IMAP4_SSL("127.0.0.1", machine.port(993), ssl_context=tls_context(), timeout=30)


def hierarchy_separator(imap: imaplib.IMAP4) -> str:
    """'/' with unixhierarchysep (our default), '.' without (Debian's own packages)."""
    _, data = imap.list('""', '""')
    line = data[0]
    assert isinstance(line, bytes), f"LIST answered {data!r}"
    return line.decode().split('"')[1]


def imap_login(machine: DebianContainer, user: str, password: str) -> imaplib.IMAP4:
    imap = imap_connect(machine)
    imap.login(user, password)
    return imap


def examine(imap: imaplib.IMAP4, mailbox: str = "INBOX") -> int:
    """Select the mailbox read-only; how many messages it holds."""
    status, data = imap.select(mailbox, readonly=True)
    assert status == "OK" and data[0] is not None, data
    return int(data[0])


def fetched_message(imap: imaplib.IMAP4, message_set: str | bytes) -> bytes:
    """One whole message of the selected mailbox (BODY.PEEK[]), its lines ending in LF,
    as the message files the tests wrote end theirs."""
    number = message_set.decode() if isinstance(message_set, bytes) else message_set
    _, data = imap.fetch(number, "(BODY.PEEK[])")
    part = data[0]
    assert isinstance(part, tuple), f"FETCH {number} answered {data!r}"
    return part[1].replace(b"\r\n", b"\n")


def subjects_in(imap: imaplib.IMAP4, mailbox: str) -> list[str]:
    """The Subject of each message of the mailbox, in order."""
    _, count = imap.select(mailbox, readonly=True)
    if count[0] == b"0":
        return []
    _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return [
        item[1].decode().removeprefix("Subject: ").strip()
        for item in data
        if isinstance(item, tuple)
    ]


def make_message(subject: str, body: str = "Hello from the tests.\n") -> bytes:
    message = EmailMessage()
    message["From"] = "sender@example.test"
    message["To"] = "alice@example.test"
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)  # lmtpd would add one if missing
    # Cyrus drops a second message with the same Message-ID to a mailbox.
    message["Message-ID"] = make_msgid(domain="example.test")
    message.set_content(body)
    return bytes(message)


def lmtp_deliver(
    machine: DebianContainer,
    recipients: list[str],
    message: bytes,
    sender: str = "s@example.test",
    *,
    address: str = LMTP_SOCKET,
    auth: tuple[str, str] | None = None,
) -> LmtpReplies:
    """Deliver with a real client, run in the container: over the unix socket, or over
    TCP ("127.0.0.1:24") with STARTTLS and AUTH PLAIN when `auth` is given."""
    machine.write_file(LMTP_CLIENT, (Path(__file__).parent / "lmtp_client.py").read_text())
    machine.write_file(f"{TEST_FILES}/message.eml", message)
    options = ["--auth", *auth] if auth else []
    arguments = " ".join(shlex.quote(a) for a in [*options, address, sender, *recipients])
    output = machine.check(f"python3 {LMTP_CLIENT} {arguments} < {TEST_FILES}/message.eml")
    return LmtpReplies.from_json(output)


def lmtp_deliver_each(
    machine: DebianContainer, recipients: list[str], messages: list[bytes]
) -> list[LmtpReplies]:
    """Deliver every message to the recipients, one transaction each, in one LMTP session
    over the unix socket; the replies of each transaction, in order."""
    output = machine.check(lmtp_stream_command(machine, recipients, messages))
    return [LmtpReplies.from_json(line) for line in output.splitlines()]


def lmtp_stream_command(
    machine: DebianContainer, recipients: list[str], messages: list[bytes]
) -> str:
    """Copy the messages into the container (as 000000.eml, 000001.eml, ...) and return
    the command that delivers them in one session, printing a JSON line per reply."""
    batch = f"{TEST_FILES}/batch"
    machine.write_file(LMTP_CLIENT, (Path(__file__).parent / "lmtp_client.py").read_text())
    machine.check(f"rm -rf {batch}")
    machine.write_files(batch, {f"{n:06d}.eml": m for n, m in enumerate(messages)})
    arguments = " ".join(shlex.quote(a) for a in [LMTP_SOCKET, "s@example.test", *recipients])
    return f"python3 {LMTP_CLIENT} --messages {batch} {arguments}"


def sieve_connect(machine: DebianContainer, user: str, password: str, arguments: str) -> str:
    """Run sieve-connect (package sieve-connect) as `user` against the local ManageSieve
    service. Cyrus's own sieveshell cannot STARTTLS; PLAIN, because Debian's own
    timsieved breaks off DIGEST-MD5 when it negotiates a security layer."""
    password_file = f"{TEST_FILES}/{user}-password"
    machine.write_file(password_file, password, mode=0o600)
    return machine.check(
        f"sieve-connect -s 127.0.0.1 -p 4190 -u {user} --authmech PLAIN --notlsverify"
        f" --passwordfd 3 {arguments} 3<{password_file} 2>&1"
    )


@dataclass(frozen=True)
class FuzzCounts:
    """What fuzz_client.py counted: command lines sent, sessions opened, sessions the
    server closed, and replies read."""

    cases: int
    sessions: int
    closed_by_server: int
    replies: int


def fuzz(machine: DebianContainer, protocol: str, port: int, seed: int, cases: int) -> FuzzCounts:
    """Send `cases` hostile command lines (fuzz_client.py, run in the container against
    127.0.0.1:port, at most FUZZ_DEADLINE_S seconds); what it counted."""
    machine.write_file(FUZZ_CLIENT, (Path(__file__).parent / "fuzz_client.py").read_text())
    output = machine.check(
        f"python3 {FUZZ_CLIENT} {protocol} {port} {seed} {cases} {FUZZ_DEADLINE_S}"
    )
    return FuzzCounts(**json.loads(output))
