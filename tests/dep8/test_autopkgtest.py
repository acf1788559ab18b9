"""debian/tests/control, run as autopkgtest runs it: a booted trixie system with our packages
and each test's Depends installed, the test started as root from the top of the source
package as built (orig tarball and debian.tar.xz), its artifacts kept. A Debian maintainer
gets the same with `autopkgtest`; here every test also runs on both init systems, except
Cassandane, which starts Cyrus instances of its own, so the init makes no difference to it."""

import json
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from debian.deb822 import Deb822

from cyrus_deb.containers import DebianContainer
from cyrus_deb.paths import REPO_ROOT

from ..conftest import DISTRIBUTION, REPORTS, Target, boot
from ..debian_control import binary_packages

pytestmark = [pytest.mark.dep8, pytest.mark.slow]

DEBIAN = REPO_ROOT / "debian"
SOURCE_TREE = "/var/tmp/source"
ARTIFACTS = "/var/tmp/artifacts"
# The suites debian/tests/cassandane must run (the list); it may run more.
REQUIRED_SUITES = {
    f"Cyrus::{name}"
    for name in [
        "ACL",
        "Delete",
        "MIME",
        "Search",
        "URLAuth",
        "Quota",
        "Sieve",
        "Idle",
        "Pop3",
        "Rename",
        "Expunge",
        "Flags",
        "Master",
        "Reconstruct",
        "StartTLS",
        "Replication",
        "MurderIMAP",
    ]
}


@dataclass(frozen=True)
class Dep8Test:
    name: str
    depends: tuple[str, ...]
    restrictions: frozenset[str]


def dep8_tests() -> list[Dep8Test]:
    """Each test of debian/tests/control, its Depends with "@" made our binary packages."""
    tests = []
    with open(DEBIAN / "tests" / "control") as control:
        for paragraph in Deb822.iter_paragraphs(control):
            depends = [d.strip() for d in paragraph.get("Depends", "").split(",") if d.strip()]
            expanded = [p for d in depends for p in (binary_packages() if d == "@" else [d])]
            restrictions = frozenset(paragraph.get("Restrictions", "").replace(",", " ").split())
            tests += [
                Dep8Test(name, tuple(expanded), restrictions) for name in paragraph["Tests"].split()
            ]
    return tests


def targets_for(test: Dep8Test) -> list[Target]:
    inits = ("systemd",) if test.name == "cassandane" else ("systemd", "sysvinit")
    return [Target(DISTRIBUTION, init) for init in inits]


CASES = [
    pytest.param(test, testbed, id=f"{test.name}-{testbed}")
    for test in dep8_tests()
    for testbed in targets_for(test)
]


def unpack_source_package(machine, packages_dir: Path) -> None:
    """The source package as the build made it: orig tarball, then our debian/ over it."""
    orig = next(packages_dir.glob("*.orig.tar.xz")).name
    debian = next(packages_dir.glob("*.debian.tar.xz")).name
    repo = "/srv/cyrus-repo"
    machine.check(
        f"mkdir -p {SOURCE_TREE} && tar -xJf {repo}/{orig} -C {SOURCE_TREE} --strip-components=1"
        f" && tar -xJf {repo}/{debian} -C {SOURCE_TREE}"
    )


def report_cassandane(machine, request: pytest.FixtureRequest, seconds: float) -> list[str]:
    """Cassandane's table, printed at the end of the run and kept in build/reports/."""
    table = machine.read_file(f"{ARTIFACTS}/table.txt")
    results = [
        line.split("\t") for line in machine.read_file(f"{ARTIFACTS}/results.tsv").splitlines()
    ]
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "cassandane.txt").write_text(table)
    (REPORTS / "cassandane.json").write_text(
        json.dumps(
            {"seconds": round(seconds), "results": {test: status for status, test in results}},
            indent=2,
        )
        + "\n"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    reporter.section("Cassandane against the installed packages")
    reporter.write_line(table.rstrip())
    reporter.write_line(f"written to {REPORTS / 'cassandane.txt'} and cassandane.json")
    return [test for _, test in results]


@pytest.fixture
def testbed(request: pytest.FixtureRequest, images, packages_dir) -> Iterator[DebianContainer]:
    """A booted machine with nothing of ours installed yet; ::1 works, as on a real one."""
    machine = boot(images, request.param, packages_dir, ipv6_loopback=True)
    try:
        yield machine
    finally:
        machine.stop()


@pytest.mark.parametrize(("dep8", "testbed"), CASES, indirect=["testbed"])
def test_dep8_test_passes_on_the_installed_packages(
    dep8: Dep8Test, testbed: DebianContainer, packages_dir, request
):
    # xz-utils: to unpack the source package, as autopkgtest's own machinery does.
    testbed.install([*dep8.depends, "xz-utils"])
    unpack_source_package(testbed, packages_dir)
    suites = request.config.getoption("--cassandane-suites")
    arguments = " ".join(shlex.quote(s) for s in suites) if dep8.name == "cassandane" else ""
    started = time.monotonic()
    run = testbed.exec(
        f"cd {SOURCE_TREE} && mkdir -p {ARTIFACTS} && AUTOPKGTEST_TMP=$(mktemp -d)"
        f" AUTOPKGTEST_ARTIFACTS={ARTIFACTS} debian/tests/{dep8.name} {arguments}"
        f" 2> {ARTIFACTS}/stderr"
    )
    seconds = time.monotonic() - started
    stderr = testbed.read_file(f"{ARTIFACTS}/stderr")
    if dep8.name == "cassandane":
        ran = report_cassandane(testbed, request, seconds)
        if not suites:
            assert {test.split(".")[0] for test in ran} >= REQUIRED_SUITES
    assert run.ok, f"exit {run.exit_code}\n{run.output}\n{stderr}"
    if "allow-stderr" not in dep8.restrictions:
        assert stderr == "", stderr
