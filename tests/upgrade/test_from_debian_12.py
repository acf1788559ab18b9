"""The release upgrade from Debian 12, with Debian's own cyrus-imapd 3.6.1, to Debian 13
with our packages: what an administrator does, and what upstream warns about.

Upstream wants a 3.6 store to have run 3.6.3+ before 3.10 or later; Debian 12 has
3.6.1. The test shows that 3.12 serves that store unchanged, and that the
conversions NEWS.Debian tells the administrator to run afterwards change nothing
a client can see.
"""

import re
from collections.abc import Iterator

import pytest

from cyrus_deb.images import flavour_image
from cyrus_testbed.clients import provision_users
from cyrus_testbed.fingerprint import fingerprint
from cyrus_testbed.machine import LOCAL_SOURCE, REPO_MOUNT, DebianContainer
from cyrus_testbed.server_config import MIGRATED_FRAGMENT, run_without_uninstalled_services
from cyrus_testbed.store import (
    CLIENT_PACKAGES,
    MESSAGES_SEEN,
    OUR_VERSION,
    USERS,
    assert_a_new_delivery_is_served,
    populate,
)

pytestmark = [pytest.mark.upgrade, pytest.mark.slow]

DEBIAN_12_PACKAGES = ["python3", "cyrus-imapd", "cyrus-admin", "sasl2-bin", "ssl-cert"]
AFTER_THE_UPGRADE = [  # NEWS.Debian, in this order
    "cyrus reconstruct -V max",
    "cyrus quota -f",
    "cyrus cyr_info -M /run/cyrus/cyrus.conf conf-lint",
]


@pytest.fixture
def debian_12_machine(docker_engine, target, packages_dir) -> Iterator[DebianContainer]:
    image = flavour_image(docker_engine, "bookworm", target.init)
    machine = DebianContainer(image, target.init, packages_dir).start()
    try:
        yield machine
    finally:
        machine.stop()


def disabled_services(migrated_fragment: str) -> str:
    return " ".join(sorted(re.findall(r"^\s*(\S+) disabled$", migrated_fragment, re.M)))


def index_versions(machine) -> set[str]:
    output = machine.check("cyrus mbexamine -u 'user/*' 2>&1")
    return {line.split(":")[1].strip() for line in output.splitlines() if "Minor Version" in line}


def test_release_upgrade_from_debian_12_keeps_the_3_6_1_store_whole(
    debian_12_machine, behaviour, assert_store_unchanged
):
    machine = debian_12_machine
    machine.install(DEBIAN_12_PACKAGES + CLIENT_PACKAGES, source="archive")
    assert machine.host.package("cyrus-common").version.startswith("3.6.1")
    run_without_uninstalled_services(machine, "pop3|nntp|http")
    # idled in START, as the comments of Debian 12's cyrus.conf suggest: Cyrus
    # 3.10 and later want it in DAEMON, which the upgrade must see to.
    machine.check(r"sed -i -E 's/^(\s*)#\s*(idled\s)/\1\2/' /etc/cyrus.conf")
    users = provision_users(machine, USERS)
    assert machine.host.process.filter(comm="idled")
    populate(machine, users, annotate_shared_folder=False)
    before = fingerprint(machine, users.passwords)
    assert before.message_count == MESSAGES_SEEN

    # The release upgrade, with our repository among the sources.
    machine.check(
        "sed -i 's/bookworm/trixie/g' /etc/apt/sources.list"
        f" && echo 'deb [trusted=yes] file:{REPO_MOUNT} ./' > {LOCAL_SOURCE}"
        " && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get full-upgrade -y -q"
        " -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold 2>&1"
    )
    assert machine.host.package("cyrus-common").version == OUR_VERSION
    machine.wait_for_tcp(143)
    behaviour(
        "index version of a Debian 12 store after the upgrade", " ".join(index_versions(machine))
    )
    assert_store_unchanged(before, fingerprint(machine, users.passwords))
    migrated = machine.read_file(MIGRATED_FRAGMENT)
    assert re.search(r"DAEMON \{\n(  .*\n)*  idled\s+cmd=", migrated), migrated
    assert machine.host.process.filter(comm="idled"), "idled does not run after the upgrade"
    behaviour("services Debian 12 did not run, after the upgrade", disabled_services(migrated))

    for command in AFTER_THE_UPGRADE:
        machine.check(f"{command} 2>&1")
    assert index_versions(machine) == {"19"}
    assert_store_unchanged(
        before, fingerprint(machine, users.passwords), step="after NEWS.Debian's steps"
    )
    assert_a_new_delivery_is_served(machine, users)
