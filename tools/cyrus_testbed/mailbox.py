"""The fault tests' view of a mailbox: what lmtpd was sent, what it acknowledged, what the
store holds afterwards, and whether reconstruct would repair anything; and a store of
many folders for damage to hit."""

import email
import json
import re
from collections import Counter
from collections.abc import Callable

from .clients import LmtpReplies, imap_login, lmtp_deliver_each, lmtp_stream_command
from .corpus import varied_messages
from .machine import DebianContainer

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
            reply = LmtpReplies.from_json(line)
        except json.JSONDecodeError:
            continue  # the client's last words (a traceback), or a line cut by the crash
        if reply.delivered_to(USER):
            acknowledged.add(reply.file)
        if not crashed and len(acknowledged) >= crash_after:
            crashed = True
            crash()
    assert crashed, f"the stream ended after {len(acknowledged)} acknowledgements, before the crash"
    return acknowledged


def stored_messages(
    machine: DebianContainer, password: str, twice_allowed: frozenset[str] = frozenset()
) -> dict[str, bytes]:
    """USER's INBOX by Message-ID; no message may be there twice unless its id is in
    `twice_allowed`."""
    imap = imap_login(machine, USER, password)
    imap.select("INBOX", readonly=True)
    status, data = imap.fetch("1:*", "(BODY.PEEK[])")
    assert status == "OK", data
    imap.logout()
    stored = [item[1] for item in data if isinstance(item, tuple)]
    ids = [message_id(message) for message in stored]
    twice = [i for i, n in Counter(ids).items() if n > 1 and i not in twice_allowed]
    assert not twice, f"stored twice: {twice}"
    return dict(zip(ids, stored, strict=True))


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


def uidnext(machine: DebianContainer, password: str) -> int:
    imap = imap_login(machine, USER, password)
    _, data = imap.status("INBOX", "(UIDNEXT)")
    imap.logout()
    match = re.search(rb"UIDNEXT (\d+)", data[0] or b"")
    assert match, f"STATUS answered {data!r}"
    return int(match.group(1))


def assert_reconstruct_finds_nothing_to_repair(
    machine: DebianContainer, password: str, *, cut_delivery_allowed: bool = False
) -> None:
    """reconstruct names each mailbox it examined; anything else it prints is a problem
    (`user.alice uid 3 guid mismatch`, `... uid 5 not found`). -G reads every message
    file and checks it against the GUID in the index.

    With cut_delivery_allowed, one thing is not: a message file at or past UIDNEXT, which
    `reconstruct` would add (`uid 564 found - adding`). lmtpd writes the file before it
    commits the index and answers 250, so that file is a delivery the crash cut short and
    the MTA will send again; the next delivery takes the same UID and overwrites it."""
    mailbox = f"user/{USER}"
    report = machine.check(f"cyrus reconstruct -n -r -G {mailbox} 2>&1")
    first_unused = uidnext(machine, password)
    problems = []
    for line in report.splitlines():
        cut = re.fullmatch(rf"user\.{USER} uid (\d+) found - adding", line.strip())
        if line.strip() in ("", mailbox):
            continue
        if cut_delivery_allowed and cut and int(cut.group(1)) >= first_unused:
            continue
        problems.append(line)
    assert mailbox in report.splitlines() and not problems, report


def assert_databases_consistent(machine: DebianContainer) -> None:
    """Every twoskip database under /var/lib/cyrus (the mailbox list, duplicate delivery,
    annotations, each user's conversations), checked by `cyr_dbtool ... consistent`."""
    report = machine.check(
        "for db in $(find /var/lib/cyrus -type f); do"
        " head -c 16 \"$db\" | grep -q 'twoskip file' || continue;"
        ' echo "$db: $(cyrus cyr_dbtool "$db" twoskip consistent 2>&1)"; done'
    )
    checked = report.splitlines()
    assert any("mailboxes.db" in line for line in checked), report
    assert all(line.endswith("Yes, consistent") for line in checked), report


FOLDERS_SEED = 20261125
FOLDERS_PER_USER = 15


def fill_with_mail_and_folders(machine: DebianContainer, passwords: dict[str, str]) -> None:
    """Each user: mail in INBOX and a dozen folders, enough records for damage to hit."""
    for user, password in passwords.items():
        messages = varied_messages(FOLDERS_SEED, 10, user, tag="damage ")
        replies = lmtp_deliver_each(machine, [user], messages)
        assert all(reply.delivered_to(user) for reply in replies), replies
        imap = imap_login(machine, user, password)
        for number in range(FOLDERS_PER_USER):
            folder = f"INBOX/folder {number}"
            assert imap.create(f'"{folder}"')[0] == "OK"
            assert imap.append(f'"{folder}"', "(\\Flagged)", None, messages[number % 10])[0] == "OK"
        imap.logout()
