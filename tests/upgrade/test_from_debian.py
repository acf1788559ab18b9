"""Upgrading from Debian's own cyrus-imapd packages to ours loses no mail."""

import random

import pytest
from debian.changelog import Changelog

from cyrus_deb.clients import (
    hierarchy_separator,
    imap_login,
    lmtp_deliver,
    make_message,
    provision_users,
)
from cyrus_deb.paths import DEBIAN_DIR

from ..fingerprint import fingerprint, message_count

pytestmark = [pytest.mark.upgrade, pytest.mark.slow]

DEBIAN_PACKAGES = ["cyrus-imapd", "cyrus-admin", "sasl2-bin", "ssl-cert"]
MESSAGES_PER_USER = 40
SEED = 20261125
OUR_VERSION = str(Changelog((DEBIAN_DIR / "changelog").read_text(), max_blocks=1).version)


def populate(machine, passwords: dict[str, str]) -> None:
    """Deliveries over LMTP, a subfolder filled over IMAP, flags, subscriptions."""
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
        imap.select("INBOX")
        imap.store("1:10", "+FLAGS", "(\\Seen)")
        imap.store("5:7", "+FLAGS", "(\\Answered $Label1)")
        imap.logout()


# Debian 13's own package, and its 3.12 backport (a same-series upgrade
# between two packagings).
DEBIAN_RELEASES = {"trixie": "3.10.", "trixie-backports": "3.12.3"}


@pytest.mark.parametrize("suite", DEBIAN_RELEASES)
def test_upgrade_from_debian_13_package_keeps_every_message_and_flag(fresh_machine, suite):
    machine = fresh_machine
    machine.install(DEBIAN_PACKAGES, source="archive", release=suite)
    version = machine.check("dpkg-query -W -f='${Version}' cyrus-common")
    assert version.startswith(DEBIAN_RELEASES[suite]), version
    # Debian's cyrus.conf runs pop3, nntp and http, whose programs are in
    # packages not installed, so its master does not start: fix it as an
    # administrator would.
    machine.check(r"sed -i -E 's/^(\s*(pop3|nntp|http)\s)/#\1/' /etc/cyrus.conf")
    users = provision_users(machine)
    populate(machine, users.passwords)
    before = fingerprint(machine, users.passwords)
    assert message_count(before) == 2 * (MESSAGES_PER_USER + 5)

    machine.install(["cyrus-imapd", "cyrus-common", "cyrus-admin"])
    assert machine.check("dpkg-query -W -f='${Version}' cyrus-common") == OUR_VERSION
    machine.wait_for_tcp(143)

    after = fingerprint(machine, users.passwords)
    assert after == before
    new = make_message("first message after the upgrade")
    assert lmtp_deliver(machine, ["alice"], new)["data"]["alice"].startswith("250")
    imap = imap_login(machine, "alice", users.passwords["alice"])
    imap.select("INBOX", readonly=True)
    assert len(imap.search(None, "SUBJECT", '"first message after the upgrade"')[1][0].split()) == 1
    imap.logout()
