"""The release upgrade from Debian 12, with Debian's own cyrus-imapd 3.6.1, to Debian 13
with our packages: what an administrator does, and what upstream warns about.

Upstream wants a 3.6 store to have run 3.6.3+ before 3.10 or later; Debian 12 has
3.6.1. The test shows that 3.12 serves that store unchanged, and that the
conversions NEWS.Debian tells the administrator to run afterwards change nothing
a client can see.
"""

from collections.abc import Iterator

import pytest

from cyrus_deb.clients import provision_users
from cyrus_deb.containers import LOCAL_SOURCE, REPO_MOUNT, DebianContainer
from cyrus_deb.images import flavour_image
from cyrus_deb.server_config import run_without_uninstalled_services

from ..fingerprint import differences, fingerprint, message_count
from .store import MESSAGES_PER_USER, OUR_VERSION, populate

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


def index_versions(machine) -> set[str]:
    output = machine.check("cyrus mbexamine -u 'user/*' 2>&1")
    return {line.split(":")[1].strip() for line in output.splitlines() if "Minor Version" in line}


def test_release_upgrade_from_debian_12_keeps_the_3_6_1_store_whole(debian_12_machine, behaviour):
    machine = debian_12_machine
    machine.install(DEBIAN_12_PACKAGES, source="archive")
    assert machine.check("dpkg-query -W -f='${Version}' cyrus-common").startswith("3.6.1")
    run_without_uninstalled_services(machine, "pop3|nntp|http")
    users = provision_users(machine)
    populate(machine, users)
    before = fingerprint(machine, users.passwords)
    # Each user sees its own INBOX and Work, and the other's Work through the ACL.
    assert message_count(before) == 2 * (MESSAGES_PER_USER + 5 + 5)

    # The release upgrade, with our repository among the sources.
    machine.check(
        "sed -i 's/bookworm/trixie/g' /etc/apt/sources.list"
        f" && echo 'deb [trusted=yes] file:{REPO_MOUNT} ./' > {LOCAL_SOURCE}"
        " && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get full-upgrade -y -q"
        " -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold 2>&1"
    )
    assert machine.check("dpkg-query -W -f='${Version}' cyrus-common") == OUR_VERSION
    machine.wait_for_tcp(143)
    behaviour(
        "index version of a Debian 12 store after the upgrade", " ".join(index_versions(machine))
    )
    after = fingerprint(machine, users.passwords)
    assert after == before, "\n".join(differences(before, after))

    for command in AFTER_THE_UPGRADE:
        machine.check(f"{command} 2>&1")
    assert index_versions(machine) == {"19"}
    converted = fingerprint(machine, users.passwords)
    assert converted == before, "\n".join(differences(before, converted))
