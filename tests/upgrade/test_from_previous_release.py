"""Upgrading from our previous release to this build loses no mail, on both inits.

The previous release is this build relabelled with a lower version
(OUR_VERSION~previous) inside the container: the same files, but dpkg runs
every upgrade path of the maintainer scripts (preinst upgrade, conffile
handling, the services trigger, the restart) exactly as between two releases.
Building the tree twice would cost four minutes for nothing more.
"""

import shlex

import pytest

from cyrus_deb.clients import provision_users
from cyrus_deb.containers import REPO_MOUNT
from cyrus_deb.server_config import master_pid

from ..fingerprint import differences, fingerprint, message_count
from .store import MESSAGES_PER_USER, OUR_VERSION, assert_a_new_delivery_is_served, populate

pytestmark = [pytest.mark.upgrade, pytest.mark.slow]

PACKAGES = ["cyrus-common", "cyrus-imapd", "cyrus-admin", "libcyrus-imap-perl"]
PREVIOUS_VERSION = f"{OUR_VERSION}~previous"
PREVIOUS_DIR = "/var/tmp/previous-release"


def install_previous_release(machine) -> None:
    """Relabel our .debs with PREVIOUS_VERSION (every mention of our version in the
    control file, so the packages' relations stay consistent) and install them."""
    ours, previous = shlex.quote(OUR_VERSION), shlex.quote(PREVIOUS_VERSION)
    for package in PACKAGES:
        machine.check(
            f"mkdir -p {PREVIOUS_DIR}/{package} && cd {PREVIOUS_DIR}"
            f" && dpkg-deb -R {REPO_MOUNT}/{package}_{OUR_VERSION.split(':')[-1]}_*.deb {package}"
            f" && sed -i 's/{OUR_VERSION}/{PREVIOUS_VERSION}/g' {package}/DEBIAN/control"
            f" && grep -q 'Version: '{previous} {package}/DEBIAN/control"
            f" && dpkg-deb -b {package} {package}.deb >/dev/null"
        )
    debs = " ".join(f"{PREVIOUS_DIR}/{package}.deb" for package in PACKAGES)
    machine.check(
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
        f" {debs} sasl2-bin ssl-cert 2>&1"
    )
    assert machine.check("dpkg-query -W -f='${Version}' cyrus-common") == PREVIOUS_VERSION, ours


def test_upgrade_from_our_previous_release_keeps_every_message_flag_acl_and_quota(
    fresh_machine,
):
    machine = fresh_machine
    install_previous_release(machine)
    machine.wait_for_tcp(143)
    users = provision_users(machine)
    populate(machine, users)
    before = fingerprint(machine, users.passwords)
    # Each user sees its own INBOX and Work, and the other's Work through the ACL.
    assert message_count(before) == 2 * (MESSAGES_PER_USER + 5 + 5)
    old_master = master_pid(machine)

    machine.install(PACKAGES)
    assert machine.check("dpkg-query -W -f='${Version}' cyrus-common") == OUR_VERSION
    machine.wait_for_tcp(143)
    assert master_pid(machine) != old_master  # restarted

    after = fingerprint(machine, users.passwords)
    assert after == before, "\n".join(differences(before, after))
    assert_a_new_delivery_is_served(machine, users)
