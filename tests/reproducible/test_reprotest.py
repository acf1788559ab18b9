"""reprotest, as reproducible-builds.org checks Debian: the source package built once more,
varied (build path, time zone, locale, environment, umask, home, kernel personality, ASLR,
number of CPUs, nocheck), gives .debs identical to those sbuild made. What cannot vary in
a container, and why, is in cyrus_deb/reproducible.py."""

import pytest

from cyrus_deb.paths import REPORTS_DIR
from cyrus_deb.reproducible import RUN_TIMEOUT_S, reprotest

pytestmark = [pytest.mark.reproducible, pytest.mark.slow]


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_a_rebuild_varied_as_debian_s_reproducibility_checks_vary_it_gives_identical_debs(
    docker_engine, packages_dir
):
    result = reprotest(docker_engine, packages_dir, REPORTS_DIR / "reprotest")
    log = (result.report_dir / "reprotest.log").read_text(errors="replace")
    assert result.reproducible, (
        f"the varied build differs; diffoscope's report is in {result.report_dir}/store\n"
        + log[-6000:]
    )
    # reprotest's own verdict, so that a run that compared nothing cannot pass.
    assert "Reproduction successful" in log, log[-6000:]
