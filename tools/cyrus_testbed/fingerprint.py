"""A store's fingerprint, taken through IMAP as each user: what an upgrade must not change.

Per user and mailbox: UIDVALIDITY, per UID the flags (\\Seen as that user
sees it) and the sha256 of the message, the ACL and the private and shared
annotations; per user the subscriptions, the quota root's limit, and the
Sieve scripts (sha256, and which one is active) over ManageSieve.
"""

import hashlib
import imaplib
import re
from dataclasses import dataclass

from .clients import imap_login, sieve_connect
from .machine import DebianContainer

UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
FETCH_UID = re.compile(rb"UID (\d+)")
FETCH_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
METADATA_ENTRIES = ("/private/comment", "/shared/comment")
# imaplib knows neither command of RFC 5464; tell it in which states they are valid.
for _command in ("GETMETADATA", "SETMETADATA"):
    imaplib.Commands.setdefault(_command, ("AUTH", "SELECTED"))


def set_metadata(imap: imaplib.IMAP4, mailbox: str, entry: str, value: str) -> None:
    typ, data = imap._simple_command("SETMETADATA", f'"{mailbox}"', f'({entry} "{value}")')
    assert typ == "OK", data


LIST_LINE = re.compile(r'^\([^)]*\) (?:NIL|"(?:\\.|[^"])") (?:"(?P<quoted>.*)"|(?P<atom>\S+))$')


def mailbox_names(imap: imaplib.IMAP4, command: str) -> list[str]:
    """Mailbox names from LIST or LSUB; with altnamespace they can hold spaces
    ("Other Users/bob/Work") and then come quoted."""
    _, data = getattr(imap, command)('""', "*")
    names = []
    for line in data:
        if line:
            found = LIST_LINE.match(line.decode())
            assert found, line
            names.append(found["quoted"] if found["quoted"] is not None else found["atom"])
    return sorted(names)


def _group(pattern: re.Pattern[bytes], response: bytes) -> bytes:
    """The first group of `pattern` in an IMAP response, which must hold it."""
    match = pattern.search(response)
    assert match, f"{pattern.pattern!r} not in {response!r}"
    return match.group(1)


def _mailbox(imap: imaplib.IMAP4, name: str) -> dict:
    status, data = imap.select(f'"{name}"', readonly=True)
    assert status == "OK", (name, data)
    untagged_ok = b" ".join(r for r in imap.untagged_responses["OK"] if isinstance(r, bytes))
    uidvalidity = int(_group(UIDVALIDITY, untagged_ok))
    messages = {}
    if int(data[0] or 0) > 0:
        _, fetched = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        for part in fetched:
            if isinstance(part, tuple):
                uid = int(_group(FETCH_UID, part[0]))
                flags = sorted(_group(FETCH_FLAGS, part[0]).decode().split())
                messages[uid] = (" ".join(flags), hashlib.sha256(part[1]).hexdigest())
    _, acl = imap.getacl(f'"{name}"')
    return {
        "uidvalidity": uidvalidity,
        "messages": messages,
        "acl": sorted(acl[0].decode().split(" ", 1)[1].split()) if acl[0] else [],
        "metadata": _metadata(imap, name),
    }


def _metadata(imap: imaplib.IMAP4, name: str) -> str:
    """The annotations the tests set, as the server reports them (imaplib has no
    GETMETADATA of its own)."""
    entries = " ".join(METADATA_ENTRIES)
    typ, data = imap._simple_command("GETMETADATA", f'"{name}"', f"({entries})")
    assert typ == "OK", data
    _, found = imap._untagged_response(typ, data, "METADATA")
    return " ".join(sorted(item.decode() for item in found if isinstance(item, bytes)))


def _quota(imap: imaplib.IMAP4) -> str:
    _, data = imap.getquotaroot("INBOX")
    return " ".join(line.decode() for line in data[1] if line)


SIEVE_LISTING = re.compile(r'^"?(?P<name>[^"\s]+)"?(?P<active> ACTIVE)?$')


def _sieve_scripts(machine: DebianContainer, user: str, password: str) -> dict[str, str]:
    """Script name -> sha256 of its text, "(active)" after the active one's."""
    scripts = {}
    for line in sieve_connect(machine, user, password, "--list").splitlines():
        found = SIEVE_LISTING.match(line.strip())
        if not found:
            continue
        copy = f"/var/tmp/fingerprint-{user}-{found['name']}.sieve"
        sieve_connect(
            machine, user, password, f"--download --remotesieve {found['name']} --localsieve {copy}"
        )
        digest = hashlib.sha256(machine.read_file(copy).encode()).hexdigest()
        scripts[found["name"]] = digest + (" (active)" if found["active"] else "")
    return scripts


@dataclass(frozen=True)
class Fingerprint:
    """What each user sees of the store: per mailbox its UIDVALIDITY, messages (UID, flags,
    digest), annotations and ACL; subscriptions, quota and Sieve scripts."""

    users: dict[str, dict]

    @property
    def mailbox_count(self) -> int:
        return sum(len(user["mailboxes"]) for user in self.users.values())

    @property
    def message_count(self) -> int:
        return sum(
            len(box["messages"])
            for user in self.users.values()
            for box in user["mailboxes"].values()
        )

    def differences(self, after: "Fingerprint") -> list[str]:
        """Every place where `after` differs from this one, one line each."""
        return _differences(self.users, after.users)


def fingerprint(
    machine: DebianContainer, passwords: dict[str, str], *, sieve: bool = True
) -> Fingerprint:
    """Without `sieve`, the Sieve scripts are left out: a Murder's front end refers
    ManageSieve clients to the back end instead of answering them."""
    users = {}
    for user, password in sorted(passwords.items()):
        imap = imap_login(machine, user, password)
        users[user] = {
            "mailboxes": {name: _mailbox(imap, name) for name in mailbox_names(imap, "list")},
            "subscribed": mailbox_names(imap, "lsub"),
            "quota": _quota(imap),
            "sieve": _sieve_scripts(machine, user, password) if sieve else {},
        }
        imap.logout()
    return Fingerprint(users)


def _differences(before: object, after: object, path: str = "") -> list[str]:
    """Every place where two nested values differ, one line each, for a readable failure."""
    if isinstance(before, dict) and isinstance(after, dict):
        lines = []
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}/{key}"
            if key not in after:
                lines.append(f"{where}: gone (was {before[key]!r:.80})")
            elif key not in before:
                lines.append(f"{where}: new ({after[key]!r:.80})")
            else:
                lines += _differences(before[key], after[key], where)
        return lines
    return [] if before == after else [f"{path}: {before!r:.80} -> {after!r:.80}"]
