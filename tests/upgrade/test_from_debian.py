"""Upgrading from Debian's own cyrus-imapd packages to ours loses no mail."""

import pytest

from cyrus_deb.clients import (
    imap_login,
    lmtp_deliver,
    make_message,
    provision_users,
)

from ..fingerprint import differences, fingerprint, message_count
from .store import MESSAGES_PER_USER, OUR_VERSION, populate

pytestmark = [pytest.mark.upgrade, pytest.mark.slow]

DEBIAN_PACKAGES = ["cyrus-imapd", "cyrus-admin", "sasl2-bin", "ssl-cert"]
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
    populate(machine, users)
    before = fingerprint(machine, users.passwords)
    # Each user sees its own INBOX and Work, and the other's Work through the ACL.
    assert message_count(before) == 2 * (MESSAGES_PER_USER + 5 + 5)

    machine.install(["cyrus-imapd", "cyrus-common", "cyrus-admin"])
    assert machine.check("dpkg-query -W -f='${Version}' cyrus-common") == OUR_VERSION
    machine.wait_for_tcp(143)

    after = fingerprint(machine, users.passwords)
    assert after == before, "\n".join(differences(before, after))
    new = make_message("first message after the upgrade")
    assert lmtp_deliver(machine, ["alice"], new)["data"]["alice"].startswith("250")
    imap = imap_login(machine, "alice", users.passwords["alice"])
    imap.select("INBOX", readonly=True)
    assert len(imap.search(None, "SUBJECT", '"first message after the upgrade"')[1][0].split()) == 1
    imap.logout()
