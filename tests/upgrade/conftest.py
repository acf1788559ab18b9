"""Every upgrade test compares fingerprints with `assert_store_unchanged`, which also records
what it compared; the run ends with that report, printed and written as JSON."""

import json
import time
from collections.abc import Callable

import pytest

from cyrus_deb.paths import REPO_ROOT

from ..fingerprint import differences, message_count

REPORT = REPO_ROOT / "build" / "reports" / "upgrade.json"
COMPARISONS = pytest.StashKey[list[dict]]()


@pytest.fixture
def assert_store_unchanged(request: pytest.FixtureRequest, target) -> Callable[..., None]:
    started = time.monotonic()
    records = request.config.stash.setdefault(COMPARISONS, [])

    def compare(before: dict, after: dict, step: str = "after the upgrade") -> None:
        found = differences(before, after)
        records.append(
            {
                "scenario": request.node.name.split("[")[0],
                "target": str(target),
                "step": step,
                "seconds": round(time.monotonic() - started, 1),
                "messages_compared": message_count(after),
                "differences": found,
            }
        )
        assert not found, "\n".join(found)

    return compare


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    records = terminalreporter.config.stash.get(COMPARISONS, [])
    if not records:
        return
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(records, indent=2) + "\n")
    terminalreporter.section("upgrade comparisons")
    for record in records:
        terminalreporter.write_line(
            f"{record['scenario']:<72} {record['target']:<16} {record['step']:<28}"
            f" {record['seconds']:>6.1f}s {record['messages_compared']:>4} messages"
            f" {len(record['differences'])} differences"
        )
    terminalreporter.write_line(f"written to {REPORT}")
