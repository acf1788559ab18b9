"""reprotest on the built source package, as reproducible-builds.org checks Debian: one more
build, varied, compared with diffoscope against the packages sbuild made.

reprotest's own `null` testbed is the trixie container it runs in, with the source
package's build dependencies installed. The varied build differs from sbuild's in build
path, time zone, locale, environment, umask, home, kernel personality, ASLR, number of
CPUs and DEB_BUILD_OPTIONS=nocheck (its time variation is on, but reprotest 0.7.30 leaves
faketime out: "build environment is sufficiently old"). Three variations are off, each
because our containers cannot have it: fileordering needs disorderfs (FUSE, no
/dev/fuse without --privileged), user_group a second user with sudo rights inside a
throwaway system, domain_host a UTS namespace (unshare, CAP_SYS_ADMIN)."""

from dataclasses import dataclass
from pathlib import Path

import docker

from .build import BUILD_DISTRIBUTION
from .engine import run_to_completion
from .images import APT_INSTALL, Recipe, base_image, ensure_image
from .progress import phase

VARIATIONS = "+all,-fileordering,-user_group,-domain_host"
PACKAGES = "/srv/packages"
REPORT = "/srv/report"
RUN_TIMEOUT_S = 3600
REPROTEST_BODY = f"""\
RUN {APT_INSTALL} reprotest faketime locales-all diffoscope-minimal dpkg-dev sudo \
 && apt-get clean
"""


@dataclass(frozen=True)
class ReprotestResult:
    exit_code: int
    report_dir: Path

    @property
    def reproducible(self) -> bool:
        return self.exit_code == 0


def reprotest(client: docker.DockerClient, packages_dir: Path, report_dir: Path) -> ReprotestResult:
    """Rebuild the source package in packages_dir with variations; report_dir gets
    reprotest's output and, when something differs, diffoscope's."""
    parent = base_image(client, BUILD_DISTRIBUTION)
    image = ensure_image(client, Recipe(f"reprotest-{BUILD_DISTRIBUTION}", parent, REPROTEST_BODY))
    (dsc,) = packages_dir.glob("*.dsc")
    report_dir.mkdir(parents=True, exist_ok=True)
    script = f"""
apt-get update -qq
apt-get build-dep -y --no-install-recommends {PACKAGES}/{dsc.name}
mkdir -p /tmp/control/source-root /tmp/source
cp {PACKAGES}/*.deb /tmp/control/source-root/
cp {PACKAGES}/{dsc.name} {PACKAGES}/*.orig.tar.* {PACKAGES}/*.debian.tar.* /tmp/source/
cd /tmp/source
rm -rf {REPORT}/store
DEB_BUILD_OPTIONS="nocheck parallel=2" reprotest --verbose --vary={VARIATIONS} --min-cpus=2 \\
    --control-build=/tmp/control --store-dir={REPORT}/store {dsc.name} -- null
"""
    with phase("reprotest (one varied build, compared with diffoscope)"):
        finished = run_to_completion(
            client,
            image,
            ["sh", "-euxc", script],
            timeout_s=RUN_TIMEOUT_S,
            volumes={
                str(packages_dir): {"bind": PACKAGES, "mode": "ro"},
                str(report_dir): {"bind": REPORT, "mode": "rw"},
            },
        )
    (report_dir / "reprotest.log").write_text(finished.output)
    return ReprotestResult(finished.exit_code, report_dir)
