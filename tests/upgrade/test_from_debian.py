"""Upgrading from Debian's own cyrus-imapd packages to ours loses no mail."""

import pytest

from cyrus_deb.clients import imap_login, lmtp_deliver, make_message, provision_users
from cyrus_deb.server_config import (
    IMAPD_CONF,
    MIGRATED_FRAGMENT,
    run_without_uninstalled_services,
)

from ..fingerprint import fingerprint, message_count
from .store import (
    CLIENT_PACKAGES,
    MESSAGES_SEEN,
    OUR_VERSION,
    USERS,
    assert_a_new_delivery_is_served,
    populate,
)

pytestmark = [pytest.mark.upgrade, pytest.mark.slow]

DEBIAN_PACKAGES = ["cyrus-imapd", "cyrus-admin", "sasl2-bin", "ssl-cert"]
# Debian 13's own package, and its 3.12 backport (a same-series upgrade
# between two packagings).
DEBIAN_RELEASES = {"trixie": "3.10.", "trixie-backports": "3.12.3"}


@pytest.mark.parametrize("suite", DEBIAN_RELEASES)
def test_upgrade_from_debian_13_package_keeps_every_message_and_flag(
    fresh_machine, suite, assert_store_unchanged
):
    machine = fresh_machine
    machine.install(DEBIAN_PACKAGES + CLIENT_PACKAGES, source="archive", release=suite)
    version = machine.check("dpkg-query -W -f='${Version}' cyrus-common")
    assert version.startswith(DEBIAN_RELEASES[suite]), version
    run_without_uninstalled_services(machine, "pop3|nntp|http")
    users = provision_users(machine, USERS)
    populate(machine, users)
    before = fingerprint(machine, users.passwords)
    assert message_count(before) == MESSAGES_SEEN

    machine.install(["cyrus-imapd", "cyrus-common", "cyrus-admin"])
    assert machine.check("dpkg-query -W -f='${Version}' cyrus-common") == OUR_VERSION
    machine.wait_for_tcp(143)

    assert_store_unchanged(before, fingerprint(machine, users.passwords))
    assert_a_new_delivery_is_served(machine, users)
    # The edited cyrus.conf runs on from a fragment, and no port opens that was closed.
    assert "lmtpunix" in machine.read_file(MIGRATED_FRAGMENT)
    assert not machine.listens(993)


def test_upgrade_keeps_an_unedited_debian_imapd_conf_and_the_namespace_it_sets(
    fresh_machine, behaviour, assert_store_unchanged
):
    """dpkg would replace an imapd.conf nobody edited; ucf keeps it, and with it the
    namespace clients know (NEWS.Debian). Users come from sasldb under the host's name
    and get their INBOX at the first login, as Debian's default imapd.conf has it."""
    machine = fresh_machine
    machine.install(DEBIAN_PACKAGES + CLIENT_PACKAGES, source="archive")
    run_without_uninstalled_services(machine, "pop3|nntp|http")
    assert machine.service("restart").ok
    debian_conf = machine.check(f"sha256sum {IMAPD_CONF}")
    passwords = {"alice": "alice-secret"}
    machine.check("echo alice-secret | saslpasswd2 -p -c alice")
    machine.wait_for_tcp(143)
    imap = imap_login(machine, "alice", passwords["alice"])
    assert imap.create("INBOX.Work")[0] == "OK"
    assert imap.append("INBOX.Work", "(\\Flagged)", None, make_message("filed"))[0] == "OK"
    imap.logout()
    assert lmtp_deliver(machine, ["alice"], make_message("delivered"))["data"]["alice"][:3] == "250"
    before = fingerprint(machine, passwords)

    machine.install(["cyrus-imapd", "cyrus-common", "cyrus-admin"])
    assert machine.check("dpkg-query -W -f='${Version}' cyrus-common") == OUR_VERSION
    machine.wait_for_tcp(143)

    assert machine.check(f"sha256sum {IMAPD_CONF}") == debian_conf
    assert machine.exec(f"test -f {IMAPD_CONF}.ucf-dist").ok
    behaviour(
        "folders of an unedited Debian imapd.conf after the upgrade",
        " ".join(fingerprint(machine, passwords)["alice"]["mailboxes"]),
    )
    assert_store_unchanged(before, fingerprint(machine, passwords))
