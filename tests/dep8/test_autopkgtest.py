"""debian/tests, run by autopkgtest itself as ci.debian.net runs it: trixie's autopkgtest
takes the .changes the build made (source package and binaries), boots a testbed with
autopkgtest-virt-docker --init, installs our packages and each test's Depends there, and
runs the test from the unpacked source package, patches applied.

The testbed is a minbase trixie system with nothing but its init (systemd, or sysvinit
and rsyslog), so a test that needs more must say so in its Depends; it runs with the
real-host settings of every machine of ours. autopkgtest 5.49 is trixie's: it runs in a
trixie container that reaches the host's Docker engine through its socket (--remote:
files go to the testbed through `docker exec`, nothing through host paths).

Every test runs on both init systems except Cassandane, which starts Cyrus instances of
its own under its own master: the init makes no difference to it, and it takes about 7
minutes. autopkgtest's whole output directory (log, summary, artifacts) is kept in
build/reports/autopkgtest/, Cassandane's table also in build/reports/cassandane.txt."""

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cyrus_deb.engine import owner_labels, run_to_completion
from cyrus_deb.images import (
    APT_INSTALL,
    Recipe,
    base_image,
    ensure_image,
    init_image,
)
from cyrus_deb.paths import REPORTS_DIR
from cyrus_testbed.boot import DISTRIBUTION, Target
from cyrus_testbed.debian_control import dep8_test_names
from cyrus_testbed.init_systems import init_system

pytestmark = [pytest.mark.dep8, pytest.mark.slow]

DOCKER_SOCKET = "/var/run/docker.sock"
PACKAGES = "/srv/packages"
OUTPUT = "/srv/output"
# autopkgtest's own default is 10,000 s; Cassandane stops itself after 2,400 s.
TEST_TIMEOUT_S = 3000
RUN_TIMEOUT_S = 3600
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
class AutopkgtestRun:
    exit_code: int
    output_dir: Path

    def verdicts(self) -> dict[str, str]:
        """Each test's verdict from autopkgtest's summary: PASS, FAIL, SKIP, ..."""
        summary = self.output_dir / "summary"
        lines = summary.read_text().splitlines() if summary.exists() else []
        return {words[0]: words[1] for line in lines if len(words := line.split()) >= 2}

    def log_tail(self) -> str:
        log = self.output_dir / "log"
        return log.read_text(errors="replace")[-8000:] if log.exists() else "(no log)"


@pytest.fixture(scope="session")
def autopkgtest_image(docker_engine) -> str:
    parent = base_image(docker_engine, DISTRIBUTION)
    body = f"RUN {APT_INSTALL} autopkgtest docker-cli iproute2 && apt-get clean\n"
    return ensure_image(docker_engine, Recipe(f"autopkgtest-{DISTRIBUTION}", parent, body))


def image_for_testbed(client, target: Target) -> str:
    """The init-only image; autopkgtest runs it with /sbin/init as the command, so systemd's
    cgroup set-up goes in the image's entry point."""
    image = init_image(client, target.distribution, target.init)
    entrypoint = init_system(target.init).testbed_entrypoint()
    if entrypoint is None:
        return image
    recipe = Recipe(
        f"testbed-{target.init}-{target.distribution}",
        image,
        f"ENTRYPOINT {json.dumps(entrypoint)}\n",
    )
    return ensure_image(client, recipe)


def run_autopkgtest(
    client,
    runner: str,
    testbed: str,
    target: Target,
    test: str,
    packages_dir: Path,
    env: list[str],
    echo: Callable[[str], None],
) -> AutopkgtestRun:
    output_dir = REPORTS_DIR / "autopkgtest" / f"{test}-{target}"
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    (changes,) = packages_dir.glob("*.changes")
    settings = init_system(target.init).host_settings(ipv6_loopback=True)
    labels = [f"--label={name}={value}" for name, value in owner_labels().items()]
    finished = run_to_completion(
        client,
        runner,
        [
            "autopkgtest",
            f"--output-dir={OUTPUT}",
            f"--test-name={test}",
            f"--timeout-test={TEST_TIMEOUT_S}",
            *(f"--env={variable}" for variable in env),
            f"{PACKAGES}/{changes.name}",
            "--",
            "docker",
            "--init",
            "--remote",
            testbed,
            *settings.docker_run_flags(),
            *labels,
        ],
        timeout_s=RUN_TIMEOUT_S,
        echo=echo,
        environment={"DOCKER_HOST": f"unix://{DOCKER_SOCKET}"},
        volumes={
            DOCKER_SOCKET: {"bind": DOCKER_SOCKET, "mode": "rw"},
            str(packages_dir): {"bind": PACKAGES, "mode": "ro"},
            str(output_dir): {"bind": OUTPUT, "mode": "rw"},
        },
    )
    (output_dir / "autopkgtest-stdout.txt").write_text(finished.output)
    return AutopkgtestRun(finished.exit_code, output_dir)


def report_cassandane(run: AutopkgtestRun, request: pytest.FixtureRequest) -> dict[str, str]:
    """Cassandane's table, printed at the end of the run and kept in build/reports/; each
    test's status (passed, failed, known-failure, skipped)."""
    artifacts = run.output_dir / "artifacts"
    table = (artifacts / "table.txt").read_text()
    results = [line.split("\t") for line in (artifacts / "results.tsv").read_text().splitlines()]
    (REPORTS_DIR / "cassandane.txt").write_text(table)
    (REPORTS_DIR / "cassandane.json").write_text(
        json.dumps({"results": {test: status for status, test in results}}, indent=2) + "\n"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    assert reporter is not None
    reporter.section("Cassandane against the installed packages")
    reporter.write_line(table.rstrip())
    reporter.write_line(f"written to {REPORTS_DIR / 'cassandane.txt'} and cassandane.json")
    return {test: status for status, test in results}


def cassandane_failures(run: AutopkgtestRun, statuses: dict[str, str]) -> str:
    """The tests that failed unexpectedly and Cassandane's own reports of them, from the run
    and from the run again alone: the reports of the known failures, which come first, and the
    log's tail, mostly the testbed's set-up, would hide them."""
    failed = sorted(test for test, status in statuses.items() if status == "failed")
    # Cassandane numbers each report "3) Master.sighup_recycling", without "Cyrus::".
    headings = {f") {test.removeprefix('Cyrus::')}" for test in failed}
    reports = []
    for name in ("failure-reports.txt", "failure-reports-rerun.txt"):
        path = run.output_dir / "artifacts" / name
        text = path.read_text(errors="replace") if path.exists() else ""
        for report in re.split(r"^(?=\d+\) )", text, flags=re.M):
            if any(report.split("\n", 1)[0].endswith(heading) for heading in headings):
                reports.append(f"{name}: {report[:6000]}")
    found = "\n".join(reports) or "(no report of them)"
    return f"failed: {' '.join(failed) or 'none'}\n{found}\n...\n{run.log_tail()[-2000:]}"


@pytest.fixture
def autopkgtest(docker_engine, autopkgtest_image, packages_dir, target, request):
    """Runs one DEP-8 test; autopkgtest's output goes to the terminal as it comes (a
    Cassandane run takes minutes), each line headed by the test and its target."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def run(test: str, env: list[str]) -> AutopkgtestRun:
        testbed = image_for_testbed(docker_engine, target)

        def echo(line: str) -> None:
            # Past pytest's capture, which would keep a passing test's lines from view.
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"{test} [{target}] {line}")

        return run_autopkgtest(
            docker_engine, autopkgtest_image, testbed, target, test, packages_dir, env, echo
        )

    return run


@pytest.mark.quick
@pytest.mark.parametrize("test", [name for name in dep8_test_names() if name != "cassandane"])
def test_autopkgtest_passes_the_dep8_test_on_a_minimal_testbed(test: str, autopkgtest):
    run = autopkgtest(test, [])
    assert run.verdicts() == {test: "PASS"}, run.log_tail()
    assert run.exit_code == 0, run.log_tail()


# Cassandane starts Cyrus instances of its own under its own master, so the init makes no
# difference to it, and it takes about 7 minutes: one init is enough.
@pytest.mark.only_on("systemd")
@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
def test_autopkgtest_passes_cassandane_on_a_minimal_testbed(autopkgtest, request):
    suites = request.config.getoption("--cassandane-suites")
    run = autopkgtest("cassandane", [f"CASSANDANE_SUITES={' '.join(suites)}"] if suites else [])
    if not (run.output_dir / "artifacts" / "table.txt").exists():
        pytest.fail(f"Cassandane made no table:\n{run.log_tail()}")
    statuses = report_cassandane(run, request)
    if not suites:
        assert {name.split(".")[0] for name in statuses} >= REQUIRED_SUITES
    assert run.verdicts() == {"cassandane": "PASS"}, cassandane_failures(run, statuses)
    assert run.exit_code == 0, cassandane_failures(run, statuses)
