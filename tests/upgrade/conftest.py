"""Every upgrade test compares fingerprints with `assert_store_unchanged`, which also records
what it compared in the run's figures (build/reports/upgrade.json)."""

from collections.abc import Callable

import pytest

from ..fingerprint import differences, message_count


@pytest.fixture
def assert_store_unchanged(figures) -> Callable[..., None]:
    def compare(before: dict, after: dict, step: str = "after the upgrade") -> None:
        found = differences(before, after)
        figures(step=step, messages_compared=message_count(after), differences=found)
        assert not found, "\n".join(found)

    return compare
