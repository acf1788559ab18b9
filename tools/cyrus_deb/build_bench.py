"""How long our build takes against Debian's own cyrus-imapd, built here the same way: the
same sbuild chroot, jobs and checks, the two sides taking turns round by round, so that
whatever else slows this machine slows both. sbuild's own Install-Time (the build
dependencies) and Build-Time (dpkg-buildpackage) are the figures."""

import re
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .build import BUILD_DISTRIBUTION, PARALLEL_JOBS, source_package
from .errors import UserError
from .progress import phase, say
from .sbuild import build_user, chroot_tarball, sbuild
from .upstream import debian_source_package, fetch_orig

# Debian's cyrus-imapd of the distribution we build for is the yardstick.
REFERENCE_SUITE = BUILD_DISTRIBUTION
SIDES = ("debian", "ours")


@dataclass(frozen=True)
class SbuildTimes:
    """sbuild's summary of one build, in seconds."""

    install_s: int
    build_s: int

    @property
    def total_s(self) -> int:
        return self.install_s + self.build_s

    @classmethod
    def from_log(cls, text: str) -> "SbuildTimes":
        figures = dict(re.findall(r"^(Install-Time|Build-Time): (\d+)$", text, re.MULTILINE))
        if set(figures) != {"Install-Time", "Build-Time"}:
            raise UserError("sbuild's log has no Install-Time and Build-Time summary")
        return cls(int(figures["Install-Time"]), int(figures["Build-Time"]))


@dataclass(frozen=True)
class TimedBuild:
    side: str
    version: str
    round: int
    times: SbuildTimes


@dataclass(frozen=True)
class BuildBenchResults:
    started: str
    jobs: int
    builds: list[TimedBuild]

    def median(self, side: str, figure: str) -> float:
        return statistics.median(
            getattr(build.times, figure) for build in self.builds if build.side == side
        )

    def as_json(self) -> dict[str, object]:
        return {
            "started": self.started,
            "jobs": self.jobs,
            "builds": [asdict(build) for build in self.builds],
        }


def _version(dsc: Path) -> str:
    return dsc.stem.split("_", 1)[1]


def run_build_bench(rounds: int, log_dir: Path) -> BuildBenchResults:
    """Build Debian's source and ours `rounds` times each, alternating which goes first."""
    user = build_user()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    log_dir.mkdir(parents=True, exist_ok=True)
    builds = []
    with tempfile.TemporaryDirectory(prefix="bench-build-", dir=user.home) as scratch:
        work = Path(scratch)
        (work / "ours").mkdir()
        user.give(work)  # dpkg-source and sbuild run as the build user, below this directory
        with phase(f"fetching Debian's {REFERENCE_SUITE} source and making ours"):
            sources = {
                "debian": debian_source_package(REFERENCE_SUITE, work / "debian"),
                "ours": source_package(user, fetch_orig(work / "orig"), work / "ours"),
            }
            user.give(work)
        chroot = chroot_tarball(user, BUILD_DISTRIBUTION)
        for number in range(1, rounds + 1):
            order = SIDES if number % 2 else SIDES[::-1]
            for side in order:
                dsc = sources[side]
                log = log_dir / f"{side}-{number}.build"
                with phase(f"round {number}/{rounds}: sbuild of {side} ({_version(dsc)})"):
                    results = sbuild(user, dsc, chroot, jobs=PARALLEL_JOBS, check=True, log=log)
                times = SbuildTimes.from_log(log.read_text(errors="replace"))
                shutil.rmtree(results)  # the side's next round builds into a new one
                say(f"{side}: Install-Time {times.install_s} s, Build-Time {times.build_s} s")
                builds.append(TimedBuild(side, _version(dsc), number, times))
    return BuildBenchResults(started, PARALLEL_JOBS, builds)


def render(results: BuildBenchResults) -> str:
    rounds = len(results.builds) // len(SIDES)
    versions = {build.side: build.version for build in results.builds}
    lines = [
        f"sbuild --chroot-mode=unshare, {BUILD_DISTRIBUTION}, --jobs={results.jobs}, checks on;"
        f" median of {rounds} round(s), seconds",
        f"{'':30} {'Install-Time':>12} {'Build-Time':>10} {'together':>8}",
    ]
    for side in SIDES:
        install, build, total = (
            results.median(side, figure) for figure in ("install_s", "build_s", "total_s")
        )
        label = f"{side} {versions[side]}"
        lines.append(f"{label:30} {install:>12.0f} {build:>10.0f} {total:>8.0f}")
    ratio = results.median("ours", "total_s") / results.median("debian", "total_s")
    lines.append(f"ours / Debian's, together: {ratio:.2f}")
    return "\n".join(lines)
