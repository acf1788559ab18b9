"""A store's fingerprint, taken through IMAP as each user: what an upgrade must not change."""

import hashlib
import imaplib
import re

from cyrus_deb.clients import imap_login
from cyrus_deb.containers import DebianContainer

UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
FETCH_UID = re.compile(rb"UID (\d+)")
FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def _mailbox_names(imap: imaplib.IMAP4, command: str) -> list[str]:
    _, data = getattr(imap, command)('""', "*")
    return sorted(line.decode().rsplit(" ", 1)[-1].strip('"') for line in data if line)


def _mailbox(imap: imaplib.IMAP4, name: str) -> dict:
    status, data = imap.select(f'"{name}"', readonly=True)
    assert status == "OK", (name, data)
    uidvalidity = int(UIDVALIDITY.search(b" ".join(imap.untagged_responses["OK"])).group(1))
    messages = {}
    if int(data[0]) > 0:
        _, fetched = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        for part in fetched:
            if isinstance(part, tuple):
                uid = int(FETCH_UID.search(part[0]).group(1))
                flags = sorted(FETCH_FLAGS.search(part[0]).group(1).decode().split())
                messages[uid] = (" ".join(flags), hashlib.sha256(part[1]).hexdigest())
    return {"uidvalidity": uidvalidity, "messages": messages}


def fingerprint(machine: DebianContainer, passwords: dict[str, str]) -> dict:
    """Per user: every mailbox (UIDVALIDITY, per UID the flags and sha256), subscriptions."""
    result = {}
    for user, password in sorted(passwords.items()):
        imap = imap_login(machine, user, password)
        result[user] = {
            "mailboxes": {name: _mailbox(imap, name) for name in _mailbox_names(imap, "list")},
            "subscribed": _mailbox_names(imap, "lsub"),
        }
        imap.logout()
    return result


def message_count(snapshot: dict) -> int:
    return sum(
        len(box["messages"]) for user in snapshot.values() for box in user["mailboxes"].values()
    )
