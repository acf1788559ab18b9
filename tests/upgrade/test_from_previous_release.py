"""Upgrading from our previous release to this build loses no mail, on both inits.

The previous release is this build relabelled with a lower version
(OUR_VERSION~previous) inside the container: the same files, but dpkg runs
every upgrade path of the maintainer scripts (preinst upgrade, conffile
handling, the services trigger, the restart) exactly as between two releases.
Building the tree twice would cost four minutes for nothing more.
"""

import shlex
from dataclasses import dataclass

import pytest

from cyrus_testbed.clients import CyrusUsers, provision_users
from cyrus_testbed.fingerprint import Fingerprint, fingerprint
from cyrus_testbed.machine import LOCAL_SOURCE, REPO_MOUNT, DebianContainer
from cyrus_testbed.server_config import IMAPD_CONF, master_pid
from cyrus_testbed.store import (
    CLIENT_PACKAGES,
    MESSAGES_SEEN,
    OUR_VERSION,
    USERS,
    assert_a_new_delivery_is_served,
    populate,
)

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
        f" {debs} sasl2-bin ssl-cert {' '.join(CLIENT_PACKAGES)} 2>&1"
    )
    assert machine.host.package("cyrus-common").version == PREVIOUS_VERSION, ours


@dataclass(frozen=True)
class PopulatedStore:
    machine: DebianContainer
    users: CyrusUsers
    before: Fingerprint


@pytest.fixture
def previous_release_store(fresh_machine) -> PopulatedStore:
    """Our previous release, installed and holding the store every upgrade test starts from."""
    install_previous_release(fresh_machine)
    fresh_machine.wait_for_tcp(143)
    users = provision_users(fresh_machine, USERS)
    populate(fresh_machine, users)
    before = fingerprint(fresh_machine, users.passwords)
    assert before.message_count == MESSAGES_SEEN
    return PopulatedStore(fresh_machine, users, before)


def test_upgrade_from_our_previous_release_keeps_every_message_flag_acl_and_quota(
    previous_release_store, assert_store_unchanged
):
    machine, users, before = (
        previous_release_store.machine,
        previous_release_store.users,
        previous_release_store.before,
    )
    old_master = master_pid(machine)

    machine.install(PACKAGES)
    assert machine.host.package("cyrus-common").version == OUR_VERSION
    machine.wait_for_tcp(143)
    assert master_pid(machine) != old_master  # restarted

    assert_store_unchanged(before, fingerprint(machine, users.passwords))
    assert_a_new_delivery_is_served(machine, users)


def test_an_upgrade_over_an_imapd_conf_cyrus_cannot_parse_finishes_and_says_what_to_fix(
    previous_release_store, behaviour, assert_store_unchanged
):
    """An imapd.conf Cyrus cannot parse (a key given twice, as an administrator appending an
    override makes it) must not stop the upgrade half-way, or every later apt run fails
    too. The upgrade finishes with Cyrus's words and what to do on the terminal; the service
    stays down until the line is gone, then starts, and nothing is lost."""
    machine, users, before = (
        previous_release_store.machine,
        previous_release_store.users,
        previous_release_store.before,
    )
    good_conf = machine.read_file(IMAPD_CONF)
    machine.check(f"echo 'admins: somebody' >> {IMAPD_CONF}")

    upgraded = machine.run(
        f"echo 'deb [trusted=yes] file:{REPO_MOUNT} ./' > {LOCAL_SOURCE} && apt-get update -qq"
        " && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"
        f" {' '.join(PACKAGES)} 2>&1"
    )
    assert upgraded.ok, upgraded.output
    assert "specified twice" in upgraded.output, upgraded.output
    assert "correct what the lines above name" in upgraded.output, upgraded.output
    status = machine.check("dpkg-query -W -f='${Status} ${Version}' cyrus-common")
    behaviour(
        "cyrus-common after an upgrade over an imapd.conf Cyrus cannot parse", status.split()[2]
    )
    assert status == f"install ok installed {OUR_VERSION}"
    assert machine.check("dpkg --audit") == ""
    assert not machine.listens(143)

    machine.rewrite_file(IMAPD_CONF, good_conf)
    started = machine.start_again()
    assert started.ok, started.output
    machine.wait_for_tcp(143)
    assert_store_unchanged(before, fingerprint(machine, users.passwords), step="after the fix")
    assert_a_new_delivery_is_served(machine, users)
