"""Upgrading from Debian's own cyrus-imapd packages to ours loses no mail."""

import pytest

from cyrus_deb.clients import provision_users
from cyrus_deb.server_config import run_without_uninstalled_services

from ..fingerprint import differences, fingerprint, message_count
from .store import MESSAGES_PER_USER, OUR_VERSION, assert_a_new_delivery_is_served, populate

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
    run_without_uninstalled_services(machine, "pop3|nntp|http")
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
    assert_a_new_delivery_is_served(machine, users)
