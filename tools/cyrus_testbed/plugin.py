"""The pytest plugin of our tests (tests/conftest.py registers it): options, the target
parametrization, the fixtures that boot machines, and the reports at the end of a run.

Container lifecycle lives here; assertions live in the tests. Every container
is removed when its scope ends, whether the tests passed, failed or were
interrupted.
"""

import json
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path

import docker
import pytest

from cyrus_deb.engine import docker_client, remove_abandoned
from cyrus_deb.images import INIT_SYSTEMS
from cyrus_deb.paths import PACKAGES_DIR, REPO_ROOT, REPORTS_DIR
from cyrus_deb.progress import say

from .behaviour_table import Table, differences, write_table
from .boot import DISTRIBUTION, ImagesByTarget, Target, boot
from .machine import DebianContainer, image_for_tests
from .server_image import server_image

BEHAVIOUR_DOCUMENT = REPO_ROOT / "tests" / "integration" / "README.md"
OBSERVED = pytest.StashKey[Table]()
FIGURES = pytest.StashKey[dict[str, list[dict]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--init",
        action="append",
        choices=INIT_SYSTEMS,
        help="run the container tests on this init system only (repeatable)",
    )
    parser.addoption(
        "--init-bound-only",
        action="store_true",
        help="leave out the tests that boot no machine of an init system: for a CI job per"
        " init system, where another job runs those",
    )
    parser.addoption(
        "--cassandane-suites",
        action="append",
        default=[],
        help="run these Cassandane suites or tests instead of debian/tests/cassandane's list",
    )
    parser.addoption(
        "--write-behaviour-table",
        action="store_true",
        help="write what the tests observed into tests/integration/README.md"
        " instead of checking it",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        inits = metafunc.config.getoption("--init") or INIT_SYSTEMS
        only_on = metafunc.definition.get_closest_marker("only_on")
        if only_on:
            inits = [init for init in inits if init in only_on.args]
        targets = [Target(DISTRIBUTION, init) for init in inits]
        metafunc.parametrize("target", targets, ids=str, scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect, rather than skip, a test about one init system when --init chose others
    (pytest would report its empty parametrisation as a skip), and with --init-bound-only
    every test that boots no machine of an init system."""
    bound_only = config.getoption("--init-bound-only")
    chosen: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "target" in getattr(item, "fixturenames", ()):
            runs = callspec is not None and isinstance(callspec.params.get("target"), Target)
        else:
            runs = not bound_only
        (chosen if runs else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = chosen


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach what a person looks at first: status, init log, Cyrus's lines."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            for name, machine in machines_of(value).items():
                title = f"container logs: {name}" if name else "container logs"
                try:
                    report.sections.append((title, machine.logs_for_humans()))
                except Exception as error:  # the container may be gone already
                    report.sections.append((title, f"unavailable: {error}"))
    return report


def machines_of(value: object) -> dict[str, DebianContainer]:
    """The machines a fixture's value holds: itself, its `machine`, or its `machines` (a
    mapping by role, for tests of several machines)."""
    named = getattr(value, "machines", None)
    if isinstance(named, Mapping):
        return {name: m for name, m in named.items() if isinstance(m, DebianContainer)}
    machine = getattr(value, "machine", value)
    return {"": machine} if isinstance(machine, DebianContainer) else {}


@pytest.fixture
def behaviour(request: pytest.FixtureRequest, target: Target) -> Callable[[str, str], None]:
    """Record what a test observed on its target, for the table in tests/integration/README.md."""
    observed = request.config.stash.setdefault(OBSERVED, {})

    def record(what: str, value: str) -> None:
        observed.setdefault(what, {})[str(target)] = value

    return record


@pytest.fixture
def figures(request: pytest.FixtureRequest, target: Target) -> Callable[..., None]:
    """Record what a test measured (counts, differences); the run ends with every record
    printed, and written to build/reports/SUITE.json (SUITE: the test's directory)."""
    started = time.monotonic()
    suite = request.path.parent.name
    records = request.config.stash.setdefault(FIGURES, {}).setdefault(suite, [])

    def record(**values: object) -> None:
        records.append(
            {
                "scenario": request.node.originalname,
                "target": str(target),
                "seconds": round(time.monotonic() - started, 1),
                **values,
            }
        )

    return record


def _write_figures(terminalreporter: pytest.TerminalReporter) -> None:
    for suite, records in terminalreporter.config.stash.get(FIGURES, {}).items():
        REPORTS_DIR.mkdir(parents=True, exist_ok=True)
        (REPORTS_DIR / f"{suite}.json").write_text(json.dumps(records, indent=2) + "\n")
        terminalreporter.section(f"{suite} figures")
        for record in records:
            values = " ".join(
                f"{key}={len(value) if isinstance(value, list) else value}"
                for key, value in record.items()
                if key not in ("scenario", "target")
            )
            terminalreporter.write_line(f"{record['scenario']:<64} {record['target']:<16} {values}")
        terminalreporter.write_line(f"written to {REPORTS_DIR / suite}.json")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Check every observation against the documented table (or write it, when asked)."""
    observed = session.config.stash.get(OBSERVED, {})
    if not observed:
        return
    if session.config.getoption("--write-behaviour-table"):
        write_table(BEHAVIOUR_DOCUMENT, observed)
        return
    found = differences(BEHAVIOUR_DOCUMENT, observed)
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        assert reporter is not None
        reporter.section(f"behaviour not as {BEHAVIOUR_DOCUMENT.name} documents it", red=True)
        for line in found:
            reporter.write_line(line)
        reporter.write_line("if the change is intended: rerun with --write-behaviour-table")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def docker_engine() -> docker.DockerClient:
    client = docker_client()
    for name in remove_abandoned(client):
        say(f"removed {name}, left behind by a run that was killed")
    return client


@pytest.fixture(scope="session")
def images(docker_engine: docker.DockerClient, packages_dir: Path) -> ImagesByTarget:
    """Machines with our packages' dependencies and nothing of ours."""
    return ImagesByTarget(docker_engine, packages_dir, image_for_tests)


@pytest.fixture(scope="session")
def server_images(docker_engine: docker.DockerClient, packages_dir: Path) -> ImagesByTarget:
    """Machines with the server installed and its users provisioned, shut down clean."""
    return ImagesByTarget(docker_engine, packages_dir, server_image)


@pytest.fixture
def fresh_machine(
    images: ImagesByTarget, target: Target, packages_dir: Path
) -> Iterator[DebianContainer]:
    """A booted system with nothing of ours installed, for tests that change it."""
    machine = boot(images, target, packages_dir)
    try:
        yield machine
    finally:
        machine.stop()


@pytest.fixture(scope="session")
def packages_dir() -> Path:
    """The output of `./cyrus-deb build`; the tests that need it fail, loudly, without it."""
    if not (PACKAGES_DIR / "Packages").exists():
        pytest.fail(f"no built packages in {PACKAGES_DIR}: run `./cyrus-deb build` first")
    return PACKAGES_DIR


def _scenario_and_target(nodeid: str) -> tuple[str, str]:
    """'tests/x.py::test_a[trixie-systemd-/run]' -> ('test_a[/run]', 'trixie-systemd'), and
    'test_b[mail-partition-trixie-sysvinit]' -> ('test_b[mail-partition]', 'trixie-sysvinit'):
    the target is wherever an init system's name follows a distribution's."""
    name = nodeid.split("::")[-1]
    base, _, params = name.partition("[")
    parts = params.rstrip("]").split("-") if params else []
    for at in range(len(parts) - 1):
        if parts[at + 1] in INIT_SYSTEMS:
            rest = "-".join(parts[:at] + parts[at + 2 :])
            return (f"{base}[{rest}]" if rest else base), f"{parts[at]}-{parts[at + 1]}"
    return name, "-"  # not a container test


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A scenario x init system table: result and duration of each; then the figures."""
    _write_figures(terminalreporter)
    results: dict[str, dict[str, str]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome != "error":
                continue
            scenario, target = _scenario_and_target(report.nodeid)
            if target == "-":
                continue
            word = {"error": "ERROR"}.get(outcome, outcome.upper())
            results.setdefault(scenario, {})[target] = f"{word} {report.duration:.1f}s"
    if not results:
        return
    targets = sorted({t for row in results.values() for t in row})
    width = max(len(s) for s in results)
    terminalreporter.section("scenario x init system")
    terminalreporter.write_line(f"{'scenario':<{width}}  " + "  ".join(f"{t:<22}" for t in targets))
    for scenario in sorted(results):
        cells = "  ".join(f"{results[scenario].get(t, ''):<22}" for t in targets)
        terminalreporter.write_line(f"{scenario:<{width}}  {cells}")
