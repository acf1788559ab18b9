"""A later Debian upload of cyrus-imapd sorts above our version. The pin README.Debian
gives keeps apt on our packages; without it apt would take Debian's."""

import re

import pytest

from cyrus_deb.build import REPOSITORY_ORIGIN
from cyrus_deb.paths import DEBIAN_DIR
from cyrus_testbed.machine import LOCAL_SOURCE, REPO_MOUNT
from cyrus_testbed.store import OUR_VERSION

pytestmark = pytest.mark.upgrade

# What Debian's next upload of the same upstream release would be called: ours is
# UPSTREAM-1+cyrusdeb1.
DEBIAN_NEXT = f"{OUR_VERSION.split('-')[0]}-2"
DEBIAN_NEXT_DIR = "/var/tmp/debian-next"
PREFERENCE = "/etc/apt/preferences.d/cyrus-deb"


def documented_preference() -> str:
    """The preferences file README.Debian shows, as an administrator would copy it."""
    readme = (DEBIAN_DIR / "cyrus-common.README.Debian").read_text()
    block = re.search(rf"^    # {re.escape(PREFERENCE)}\n((?:    \S.*\n)+)", readme, re.M)
    assert block, f"README.Debian shows no {PREFERENCE}"
    return "".join(line[4:] + "\n" for line in block[1].splitlines())


def candidate(machine) -> str:
    policy = machine.check("apt-cache policy cyrus-common")
    match = re.search(r"Candidate: (\S+)", policy)
    assert match, policy
    return match[1]


def test_the_documented_pin_keeps_our_packages_over_a_later_debian_upload(fresh_machine, behaviour):
    machine = fresh_machine
    machine.install(["apt-utils"], source="archive")
    # Debian's next upload, made of ours relabelled, in a repository of Debian's origin.
    machine.check(
        f"mkdir -p {DEBIAN_NEXT_DIR}/unpacked && cd {DEBIAN_NEXT_DIR}"
        f" && dpkg-deb -R {REPO_MOUNT}/cyrus-common_{OUR_VERSION}_*.deb unpacked"
        f" && sed -i 's/{OUR_VERSION}/{DEBIAN_NEXT}/g' unpacked/DEBIAN/control"
        " && dpkg-deb -b unpacked cyrus-common.deb > /dev/null && rm -r unpacked"
        " && apt-ftparchive packages . > Packages"
        " && apt-ftparchive -o APT::FTPArchive::Release::Origin=Debian release . > Release"
    )
    machine.check(
        f"echo 'deb [trusted=yes] file:{REPO_MOUNT} ./' > {LOCAL_SOURCE}"
        f" && echo 'deb [trusted=yes] file:{DEBIAN_NEXT_DIR} ./'"
        " > /etc/apt/sources.list.d/debian-next.list && apt-get update -qq"
    )
    unpinned = candidate(machine)
    machine.write_file(PREFERENCE, documented_preference())
    pinned = candidate(machine)
    names = {DEBIAN_NEXT: "Debian's", OUR_VERSION: "ours"}
    behaviour(
        "apt's candidate beside Debian's next upload: unpinned, pinned",
        f"{names.get(unpinned, unpinned)}, {names.get(pinned, pinned)}",
    )
    assert unpinned == DEBIAN_NEXT, "the test's stand-in for Debian's upload was not preferred"
    assert f"o={REPOSITORY_ORIGIN}" in documented_preference()
    assert pinned == OUR_VERSION
