"""IMAP as a mail client uses it, under each setting of the two namespace options."""

import hashlib
import imaplib
import re

import pytest

from cyrus_testbed.clients import imap_login, lmtp_deliver, make_message
from cyrus_testbed.server_config import reconfigured

pytestmark = pytest.mark.integration


def uids_matching(imap: imaplib.IMAP4, *criteria: str) -> list[str]:
    status, data = imap.uid("SEARCH", *criteria)
    assert status == "OK" and isinstance(data[0], bytes), data
    return data[0].decode().split()


def body_digest(imap: imaplib.IMAP4, uid: str) -> str:
    _, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    assert isinstance(data[0], tuple), data
    return hashlib.sha256(data[0][1]).hexdigest()


def test_select_fetch_store_copy_search_and_expunge_work_on_delivered_mail(server):
    machine = server.machine
    for n in range(3):
        lmtp_deliver(machine, ["bob"], make_message(f"imap walk {n}", body=f"walk body {n}\n"))
    imap = imap_login(machine, "bob", server.users.passwords["bob"])
    assert imap.create("Kept")[0] == "OK"
    status, count = imap.select("INBOX")
    assert status == "OK" and int(count[0] or b"0") >= 3

    found = uids_matching(imap, "SUBJECT", '"imap walk"')
    assert len(found) == 3
    assert uids_matching(imap, "TEXT", '"walk body 1"') == [found[1]]
    _, flags = imap.uid("FETCH", found[0], "(FLAGS)")
    assert b"\\Seen" not in flags[0]

    assert imap.uid("STORE", found[0], "+FLAGS", "(\\Flagged $Important)")[0] == "OK"
    _, flags = imap.uid("FETCH", found[0], "(FLAGS)")
    assert b"\\Flagged" in flags[0] and b"$Important" in flags[0]
    assert uids_matching(imap, "FLAGGED") == [found[0]]

    digest = body_digest(imap, found[0])
    assert imap.uid("COPY", found[0], "Kept")[0] == "OK"
    assert imap.uid("STORE", found[0], "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert imap.expunge()[0] == "OK"
    assert uids_matching(imap, "SUBJECT", '"imap walk"') == found[1:]

    imap.select("Kept", readonly=True)
    kept = uids_matching(imap, "ALL")
    assert len(kept) == 1 and body_digest(imap, kept[0]) == digest
    _, flags = imap.uid("FETCH", kept[0], "(FLAGS)")
    assert b"\\Flagged" in flags[0] and b"\\Deleted" not in flags[0]
    imap.logout()


def delprune_now(machine) -> str:
    """The daily delprune event as master would run it, with its ages set to 0."""
    event = re.search(r'delprune\s+cmd="([^"]+)"', machine.read_file("/run/cyrus/cyrus.conf"))
    assert event, "no delprune event in /run/cyrus/cyrus.conf"
    assert re.search(r"-X \d+", event[1]) and re.search(r"-D \d+", event[1]), event[1]
    return re.sub(r"-([XD]) \d+", r"-\1 0", event[1])


def test_expunged_message_and_deleted_folder_stay_until_delprune_removes_them_from_disk(
    server, behaviour
):
    machine, password = server.machine, server.users.passwords["bob"]
    subject = "expunged, then pruned"
    assert lmtp_deliver(machine, ["bob"], make_message(subject)).delivered_to("bob")
    inbox = machine.check("cyrus mbpath user/bob").strip()
    imap = imap_login(machine, "bob", password)
    assert imap.create("Doomed")[0] == "OK"
    doomed = machine.check("cyrus mbpath user/bob/Doomed").strip()
    imap.select("INBOX")
    (uid,) = uids_matching(imap, "SUBJECT", f'"{subject}"')
    message_file = f"{inbox}/{uid}."
    assert imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert imap.expunge()[0] == "OK"
    assert imap.delete("Doomed")[0] == "OK"
    imap.logout()

    # Kept for an administrator to bring back (README.Debian, "Deleted mail").
    assert machine.run(f"test -f {message_file}").ok
    assert f"UID: {uid}" in machine.check("cyrus unexpunge -l user/bob")
    assert machine.run(f"test -d {doomed}").ok
    # Renamed, not removed (a record of the old name stays for good: a tombstone).
    assert "DELETED.user.bob.Doomed." in machine.check("cyrus ctl_mboxlist -d")

    machine.check(f"sleep 1 && cyrus {delprune_now(machine)}")
    left = [path for path in (message_file, doomed) if machine.run(f"test -e {path}").ok]
    behaviour(
        "expunged message and deleted folder after delprune with ages 0",
        " ".join(left) or "gone from disk",
    )
    assert not left
    assert "DELETED.user.bob.Doomed." not in machine.check("cyrus ctl_mboxlist -d")


# (altnamespace, unixhierarchysep) -> (personal prefix, name an administrator sees)
NAMESPACE_VARIANTS = {
    ("yes", "yes"): ("", "user/alice/Projects"),
    ("yes", "no"): ("", "user.alice.Projects"),
    ("no", "yes"): ("INBOX/", "user/alice/Projects"),
    ("no", "no"): ("INBOX.", "user.alice.Projects"),
}


@pytest.mark.parametrize(
    ("altnamespace", "unixhierarchysep"),
    list(NAMESPACE_VARIANTS),
    ids=[f"altnamespace={a},unixhierarchysep={u}" for a, u in NAMESPACE_VARIANTS],
)
def test_namespace_options_set_the_prefix_separator_and_mailbox_names(
    server, behaviour, altnamespace, unixhierarchysep
):
    machine, users = server.machine, server.users
    prefix, admin_name = NAMESPACE_VARIANTS[(altnamespace, unixhierarchysep)]
    options = {"altnamespace": altnamespace, "unixhierarchysep": unixhierarchysep}
    with reconfigured(machine, options=options):
        imap = imap_login(machine, "alice", users.passwords["alice"])
        _, namespace = imap.namespace()
        personal = re.match(rb'\(\("([^"]*)" "(.)"\)\)', namespace[0])
        assert personal, namespace
        assert personal[1].decode() == prefix
        assert personal[2].decode() == ("/" if unixhierarchysep == "yes" else ".")
        assert imap.create(f"{prefix}Projects")[0] == "OK"

        admin = imap_login(machine, users.admin, users.admin_password)
        _, listing = admin.list('""', admin_name)
        admin.logout()
        assert listing[0] and admin_name.encode() in listing[0], listing
        assert imap.delete(f"{prefix}Projects")[0] == "OK"
        imap.logout()
    behaviour(
        f"NAMESPACE personal prefix, altnamespace {altnamespace},"
        f" unixhierarchysep {unixhierarchysep}",
        f'"{prefix}"',
    )
