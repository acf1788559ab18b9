"""A populated store to upgrade, made through the protocols, and our version."""

import random

from debian.changelog import Changelog

from cyrus_deb.clients import (
    CyrusUsers,
    hierarchy_separator,
    imap_login,
    lmtp_deliver,
    make_message,
)
from cyrus_deb.paths import DEBIAN_DIR

from ..fingerprint import set_metadata

OUR_VERSION = str(Changelog((DEBIAN_DIR / "changelog").read_text(), max_blocks=1).version)
MESSAGES_PER_USER = 40
SEED = 20261125


def populate(machine, users: CyrusUsers) -> None:
    """Deliveries over LMTP, a subfolder filled over IMAP, flags, subscriptions, an ACL
    for the other user, an annotation, a quota."""
    passwords = users.passwords
    admin = imap_login(machine, users.admin, users.admin_password)
    separator = hierarchy_separator(admin)
    for number, user in enumerate(passwords):
        assert admin.setquota(f"user{separator}{user}", f"(STORAGE {100000 + number})")[0] == "OK"
    admin.logout()
    chooser = random.Random(SEED)
    for user, password in passwords.items():
        for number in range(MESSAGES_PER_USER):
            body = "".join(chooser.choice("abcdefgh \n") for _ in range(chooser.randint(50, 4000)))
            message = make_message(f"{user} message {number}", body)
            replies = lmtp_deliver(machine, [user], message)
            assert replies["data"][user].startswith("250"), replies
        imap = imap_login(machine, user, password)
        separator = hierarchy_separator(imap)
        work = f"INBOX{separator}Work"
        assert imap.create(work)[0] == "OK"
        assert imap.subscribe(work)[0] == "OK"
        for number in range(5):
            message = make_message(f"{user} filed {number}")
            assert imap.append(work, "(\\Flagged)", None, message)[0] == "OK"
        other = next(name for name in passwords if name != user)
        assert imap.setacl(work, other, "lrs")[0] == "OK"
        set_metadata(imap, work, "/private/comment", f"{user} work")
        imap.select("INBOX")
        imap.store("1:10", "+FLAGS", "(\\Seen)")
        imap.store("5:7", "+FLAGS", "(\\Answered $Label1)")
        imap.logout()


def assert_a_new_delivery_is_served(machine, users: CyrusUsers) -> None:
    """After an upgrade, the store still takes and serves new mail."""
    new = make_message("first message after the upgrade")
    assert lmtp_deliver(machine, ["alice"], new)["data"]["alice"].startswith("250")
    imap = imap_login(machine, "alice", users.passwords["alice"])
    imap.select("INBOX", readonly=True)
    assert len(imap.search(None, "SUBJECT", '"first message after the upgrade"')[1][0].split()) == 1
    imap.logout()
