"""Every file one of our packages takes over from a Debian package of another name is covered
by Breaks and Replaces (Policy 7.6): without them dpkg refuses to unpack ours over Debian's
("trying to overwrite"), depending on the order apt picks. Debian's .debs come from the
archive, through apt in a container of the base image."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from debian.deb822 import PkgRelation
from debian.debfile import DebFile
from debian.debian_support import version_compare

from cyrus_deb.images import base_image

pytestmark = pytest.mark.upgrade

# The Debian packagings an administrator upgrades from in place.
SUITES = ("trixie", "trixie-backports")

LIST_ARCHIVE_FILES = r"""
set -e
mirror=$(sed -n 's/^deb \([^ ]*\) .*/\1/p' /etc/apt/sources.list | head -n 1)
echo "deb $mirror trixie-backports main" > /etc/apt/sources.list.d/backports.list
apt-get update -qq
cd /tmp
for suite in $SUITES; do
    for package in $PACKAGES; do
        version=$(apt-cache madison "$package" |
            awk -v suite=" $suite/" 'index($0, suite) { print $3; exit }')
        [ -n "$version" ] || continue
        apt-get download -qq "$package=$version"
        dpkg-deb -c "${package}"_*.deb |
            awk -v at="$suite $package $version" '$1 !~ /^d/ { print at, $6 }'
        rm "${package}"_*.deb
    done
done
"""


@dataclass(frozen=True)
class ArchiveFile:
    suite: str
    package: str
    version: str
    path: str


def archive_files(client, packages: list[str]) -> Iterator[ArchiveFile]:
    output = client.containers.run(
        base_image(client, "trixie"),
        ["sh", "-c", LIST_ARCHIVE_FILES],
        environment={"SUITES": " ".join(SUITES), "PACKAGES": " ".join(packages)},
        remove=True,
    )
    for line in output.decode().splitlines():
        suite, package, version, path = line.split(" ", 3)
        yield ArchiveFile(suite, package, version, path.removeprefix("./"))


def covers(relations: str, package: str, version: str) -> bool:
    """Whether a Breaks or Replaces field names `package` below a version above `version`."""
    return any(
        relation["name"] == package
        and (bound := relation.get("version")) is not None
        and bound[0] == "<<"
        and version_compare(version, bound[1]) < 0
        for alternatives in PkgRelation.parse_relations(relations)
        for relation in alternatives
    )


def test_every_file_taken_over_from_a_debian_package_is_declared_with_breaks_and_replaces(
    docker_engine, packages_dir
):
    ours: dict[str, str] = {}
    controls = {}
    for deb in packages_dir.glob("*.deb"):
        package = deb.name.split("_")[0]
        if package.endswith("-dbgsym"):
            continue
        debfile = DebFile(str(deb))
        controls[package] = debfile.debcontrol()
        for member in debfile.data.tgz().getmembers():
            if not member.isdir():
                ours[str(member.name).removeprefix("./")] = package

    theirs = list(archive_files(docker_engine, sorted(controls)))
    assert {f.suite for f in theirs} == set(SUITES), "the archive listed no package of a suite"
    missing = set()
    for found in theirs:
        taker = ours.get(found.path)
        if taker is None or taker == found.package:
            continue
        for field in ("Breaks", "Replaces"):
            declared = controls[taker].get(field)
            if not declared or not covers(declared, found.package, found.version):
                missing.add(f"{taker}: {field}: {found.package} (<< above {found.version})")
    assert not missing, "\n".join(sorted(missing))
