"""The build benchmark reads sbuild's own summary and compares the sides' medians."""

import pytest

from cyrus_deb.build_bench import BuildBenchResults, SbuildTimes, TimedBuild, render
from cyrus_deb.errors import UserError

# The summary at the end of an sbuild log, as sbuild 0.85 writes it.
SUMMARY = """\
Build Architecture: amd64
Build-Space: 1234567
Build-Time: 282
Distribution: trixie
Host Architecture: amd64
Install-Time: 19
Job: cyrus-imapd_3.10.2-1+deb13u2
"""


def test_sbuild_summary_gives_install_and_build_time():
    assert SbuildTimes.from_log(SUMMARY) == SbuildTimes(install_s=19, build_s=282)


def test_a_log_without_sbuild_summary_is_a_clear_error():
    with pytest.raises(UserError, match="Install-Time and Build-Time"):
        SbuildTimes.from_log("E: Error creating chroot session\n")


def test_render_compares_the_medians_of_both_sides():
    builds = [
        TimedBuild("debian", "3.10.2-1+deb13u2", 1, SbuildTimes(20, 280)),
        TimedBuild("ours", "3.12.4-1+cyrusdeb1", 1, SbuildTimes(20, 340)),
        TimedBuild("ours", "3.12.4-1+cyrusdeb1", 2, SbuildTimes(20, 300)),
        TimedBuild("debian", "3.10.2-1+deb13u2", 2, SbuildTimes(20, 300)),
    ]
    text = render(BuildBenchResults("2026-12-03T00:00:00Z", 2, builds))
    assert "median of 2 round(s)" in text
    assert "ours / Debian's, together: 1.10" in text  # medians 340 / 310
