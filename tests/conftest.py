"""Shared by every test: where the built packages are."""

from pathlib import Path

import pytest

from cyrus_deb.paths import PACKAGES_DIR


@pytest.fixture(scope="session")
def packages_dir() -> Path:
    """The output of `./cyrus-deb build`; the tests that need it fail, loudly, without it."""
    if not (PACKAGES_DIR / "Packages").exists():
        pytest.fail(f"no built packages in {PACKAGES_DIR}: run `./cyrus-deb build` first")
    return PACKAGES_DIR


def _scenario_and_target(nodeid: str) -> tuple[str, str]:
    """'tests/x.py::test_a[trixie-systemd-/run]' -> ('test_a[/run]', 'trixie-systemd')."""
    name = nodeid.split("::")[-1]
    base, _, params = name.partition("[")
    parts = params.rstrip("]").split("-") if params else []
    if len(parts) >= 2 and parts[1] in ("systemd", "sysvinit"):
        rest = "-".join(parts[2:])
        return (f"{base}[{rest}]" if rest else base), f"{parts[0]}-{parts[1]}"
    return name, "-"  # not a container test


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A scenario x init system table: result and duration of each."""
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
