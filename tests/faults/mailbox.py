"""The fault tests' view of a mailbox: what lmtpd was sent, what it acknowledged, what the
store holds afterwards, and whether reconstruct would repair anything."""

import email
import json
import re
from collections.abc import Callable

from cyrus_deb.clients import imap_login, lmtp_stream_command
from cyrus_deb.containers import DebianContainer

USER = "alice"
# What lmtpd writes above the message it stores: RFC 5321 trace fields, its session
# and the sieve interpreter that filed it.
ADDED_BY_LMTPD = re.compile(
    rb"\A((Return-Path|Received|X-Cyrus-Session-Id|X-Sieve): [^\r\n]*\r\n([ \t][^\r\n]*\r\n)*)*"
)


def as_stored(message: bytes) -> bytes:
    """What the LMTP client puts on the wire, less the dot-stuffing lmtpd undoes."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n").rstrip(b"\r\n") + b"\r\n"


def message_id(message: bytes) -> str:
    return email.message_from_bytes(message)["Message-ID"]


def deliver_until(
    machine: DebianContainer, messages: list[bytes], crash_after: int, crash: Callable[[], None]
) -> set[str]:
    """Stream the messages to USER in one LMTP session and call `crash` once `crash_after`
    of them are acknowledged; read on until the stream ends. The names of the message files
    whose DATA got a 250, as far as the client lived to print it."""
    acknowledged: set[str] = set()
    crashed = False
    for line in machine.exec_lines(lmtp_stream_command(machine, [USER], messages)):
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            continue  # the client's last words (a traceback), or a line cut by the crash
        if reply["data"].get(USER, "").startswith("250"):
            acknowledged.add(reply["file"])
        if not crashed and len(acknowledged) >= crash_after:
            crashed = True
            crash()
    assert crashed, f"the stream ended after {len(acknowledged)} acknowledgements, before the crash"
    return acknowledged


def stored_messages(machine: DebianContainer, password: str) -> dict[str, bytes]:
    imap = imap_login(machine, USER, password)
    imap.select("INBOX", readonly=True)
    status, data = imap.fetch("1:*", "(BODY.PEEK[])")
    assert status == "OK", data
    imap.logout()
    stored = [item[1] for item in data if isinstance(item, tuple)]
    by_id = {message_id(message): message for message in stored}
    assert len(by_id) == len(stored), "a message is stored twice"
    return by_id


def assert_acknowledged_messages_are_intact(
    acknowledged: set[str], sent: list[bytes], stored: dict[str, bytes]
) -> None:
    missing, altered = [], []
    for name in sorted(acknowledged):
        message = sent[int(name.removesuffix(".eml"))]
        found = stored.get(message_id(message))
        expected = as_stored(message)
        if found is None:
            missing.append(name)
        elif ADDED_BY_LMTPD.sub(b"", found, count=1) != expected:
            altered.append(name)
    assert not missing, f"{len(missing)} acknowledged messages are gone: {missing[:10]}"
    assert not altered, f"{len(altered)} acknowledged messages changed: {altered[:10]}"


def assert_reconstruct_finds_nothing_to_repair(machine: DebianContainer) -> None:
    """reconstruct names each mailbox it examined; anything else it prints is a problem
    (`user.alice uid 3 guid mismatch`, `... uid 5 not found`). -G reads every message
    file and checks it against the GUID in the index."""
    mailbox = f"user/{USER}"
    report = machine.check(f"cyrus reconstruct -n -r -G {mailbox} 2>&1")
    problems = [line for line in report.splitlines() if line.strip() not in ("", mailbox)]
    assert mailbox in report.splitlines() and not problems, report
