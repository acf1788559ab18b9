"""The benchmark's guard: the hot path's figures of our packages against Debian's own 3.12,
side by side in one run, interleaved (cyrus_deb.bench). Ratios, never absolute times: the
machine's speed changes from day to day, and both sides share it."""

import pytest

from cyrus_deb.bench import GUARD_FLOOR, guard_failures, render, run_guard, saved
from cyrus_deb.paths import REPO_ROOT

pytestmark = pytest.mark.bench


def test_no_figure_of_the_hot_path_falls_to_the_floor_against_debians_own_packages(
    docker_engine, packages_dir, capsys
):
    results = run_guard(docker_engine, packages_dir)
    path = saved(results, REPO_ROOT / "build" / "bench", "bench-guard")
    with capsys.disabled():
        print(f"\n{render(results)}\n(written to {path})")
    failures = guard_failures(results)
    assert not failures, f"at or below {GUARD_FLOOR} of Debian's:\n" + "\n".join(failures)
