"""Build every package with sbuild, as Debian's buildds do; lint and check the result in a
trixie container; index it for apt."""

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.models.containers import Container

from .engine import docker_client, owner_labels
from .errors import UserError
from .images import APT_INSTALL, Recipe, base_image, ensure_image
from .paths import DEBIAN_DIR, PACKAGES_DIR
from .progress import phase, say
from .sbuild import BuildUser, build_user, chroot_tarball, sbuild
from .upstream import SOURCE_PACKAGE, fetch_orig, upstream_version

BUILD_DISTRIBUTION = "trixie"
PARALLEL_JOBS = 2
# What the local repository's Release file names as its Origin and Label: what an apt
# preference pins (README.Debian, "Our packages and Debian's").
REPOSITORY_ORIGIN = "cyrus-deb"
RESULT_PATTERNS = ("*.deb", "*.changes", "*.buildinfo", "*.dsc", "*.debian.tar.xz", "*.orig.tar.xz")

QA_BODY = f"""\
RUN {APT_INSTALL} lintian devscripts apt-utils file blhc && apt-get clean
"""


@dataclass(frozen=True)
class BuildResult:
    output_dir: Path
    debs: list[Path]
    lintian_report: Path


def qa_image(client: docker.DockerClient) -> str:
    """The distribution's own QA tools, to judge what sbuild made."""
    parent = base_image(client, BUILD_DISTRIBUTION)
    return ensure_image(client, Recipe(f"qa-{BUILD_DISTRIBUTION}", parent, QA_BODY))


def _run(container: Container, script: str, log: Path) -> None:
    """Run a shell step in the QA container, appending its output to the log."""
    result = container.exec_run(["sh", "-euc", script], demux=False)
    output = result.output or b""
    assert isinstance(output, bytes)  # not streamed
    with log.open("ab") as handle:
        handle.write(output)
    if result.exit_code != 0:
        tail = output.decode(errors="replace")[-5000:]
        raise UserError(f"build step failed (exit {result.exit_code}); full log {log}:\n{tail}")


def source_package(user: BuildUser, orig: Path, work: Path) -> Path:
    """The .dsc of the orig tarball with our debian/ on top, made by the build user."""
    source_dir = work / f"{SOURCE_PACKAGE}-{upstream_version()}"
    shutil.copy(orig, work)
    subprocess.run(["tar", "-xf", orig.name], cwd=work, check=True)
    shutil.copytree(DEBIAN_DIR, source_dir / "debian", symlinks=True)
    user.give(work)
    if user.run(["dpkg-source", "--build", source_dir.name], work) != 0:
        raise UserError(f"dpkg-source --build failed on {DEBIAN_DIR}")
    return next(work.glob("*.dsc"))


def build_packages(output_dir: Path = PACKAGES_DIR, *, check: bool = True) -> BuildResult:
    client = docker_client()
    user = build_user()
    with phase("fetching and verifying the upstream tarball"):
        orig = fetch_orig(output_dir.parent / "orig")
    # Build beside the previous result and swap only on success: a failed
    # build leaves the last good packages (and their apt index) in place.
    staging = output_dir.with_name(output_dir.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    log = staging / "build.log"
    with tempfile.TemporaryDirectory(prefix="build-", dir=user.home) as scratch:
        work = Path(scratch)
        with phase("making the source package"):
            dsc = source_package(user, orig, work)
        with phase(f"preparing the {BUILD_DISTRIBUTION} sbuild chroot"):
            chroot = chroot_tarball(user, BUILD_DISTRIBUTION)
        profile = "" if check else ", profile nocheck"
        with phase(f"sbuild (unshare, {PARALLEL_JOBS} jobs{profile})"):
            results = sbuild(user, dsc, chroot, jobs=PARALLEL_JOBS, check=check, log=log)
        for pattern in RESULT_PATTERNS:
            for path in results.glob(pattern):
                shutil.copy(path, staging)
    with phase("preparing the QA image"):
        image = qa_image(client)
    container = client.containers.run(
        image,
        ["sleep", "infinity"],
        detach=True,
        remove=True,
        volumes={str(staging): {"bind": "/out", "mode": "rw"}},
        environment={"LC_ALL": "C.UTF-8"},
        labels=owner_labels(),
    )
    try:
        with phase("indexing the local apt repository"):
            _run(
                container,
                f"""
                cd /out
                apt-ftparchive packages . > Packages
                gzip -9nk Packages
                apt-ftparchive -o APT::FTPArchive::Release::Origin={REPOSITORY_ORIGIN} \
                    -o APT::FTPArchive::Release::Label={REPOSITORY_ORIGIN} release . > Release
            """,
                log,
            )
        with phase("lintian"):
            _run(
                container,
                """
                cd /out
                lintian --info --display-info --fail-on error *.changes > /out/lintian.txt 2>&1 \
                    || { cat /out/lintian.txt; exit 1; }
            """,
                log,
            )
        with phase("blhc (compiler flags in the build log)"):
            # blhc.txt is judged by tests/unit/test_built_packages.py.
            _run(container, "blhc --all --debian /out/build.log > /out/blhc.txt 2>&1 || true", log)
        with phase("hardening-check"):
            # The report is judged by tests/unit/test_built_packages.py.
            _run(
                container,
                """
                mkdir -p /tmp/shipped
                for deb in /out/*.deb; do
                    case "$deb" in *-dbgsym_*) continue ;; esac
                    dpkg-deb -x "$deb" /tmp/shipped
                done
                cd /tmp/shipped
                # Branch protection is an arm64 feature. Control flow integrity: built
                # with -fcf-protection, but Debian 13's own binaries (/usr/bin/ls) carry
                # no IBT/SHSTK note either, so no binary linked on it can.
                find . -type f -exec sh -c 'file -b "$1" | grep -q "^ELF"' _ {} \\; -print |
                    sort > /tmp/elf-files
                xargs hardening-check --nobranchprotection --nocfprotection < /tmp/elf-files \\
                    > /out/hardening.txt 2>&1 || true
            """,
                log,
            )
    finally:
        container.stop(timeout=1)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    staging.rename(output_dir)
    debs = sorted(output_dir.glob("*.deb"))
    say(f"{len(debs)} packages in {output_dir} (apt: deb [trusted=yes] file:{output_dir} ./)")
    return BuildResult(output_dir, debs, output_dir / "lintian.txt")
