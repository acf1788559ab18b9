"""Build every binary package in a clean trixie container, lint it, index it for apt."""

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.models.containers import Container

from .engine import docker_client
from .errors import UserError
from .images import APT_INSTALL, Recipe, base_image, ensure_image
from .paths import DEBIAN_DIR, PACKAGES_DIR
from .progress import phase, say
from .upstream import SOURCE_PACKAGE, fetch_orig, upstream_version

BUILD_DISTRIBUTION = "trixie"
PARALLEL_JOBS = 2
BUILD_ROOT = "/build"
# What the local repository's Release file names as its Origin and Label: what an apt
# preference pins (README.Debian, "Our packages and Debian's").
REPOSITORY_ORIGIN = "cyrus-deb"
RESULT_PATTERNS = ("*.deb", "*.changes", "*.buildinfo", "*.dsc", "*.debian.tar.xz", "*.orig.tar.xz")

BUILDER_BODY = f"""\
RUN {APT_INSTALL} build-essential dpkg-dev lintian apt-utils devscripts file
COPY control /deps/debian/control
RUN apt-get build-dep -y /deps && apt-get clean
"""


@dataclass(frozen=True)
class BuildResult:
    output_dir: Path
    debs: list[Path]
    lintian_report: Path


def builder_image(client: docker.DockerClient) -> str:
    """Build tools plus the Build-Depends of debian/control, cached by both."""
    parent = base_image(client, BUILD_DISTRIBUTION)
    control = (DEBIAN_DIR / "control").read_bytes()
    return ensure_image(
        client, Recipe(f"builder-{BUILD_DISTRIBUTION}", parent, BUILDER_BODY, {"control": control})
    )


def _run(container: Container, script: str, log: Path) -> None:
    """Run a shell step in the build container, appending its output to the log."""
    result = container.exec_run(["sh", "-euc", script], demux=False)
    with log.open("ab") as handle:
        handle.write(result.output or b"")
    if result.exit_code != 0:
        tail = (result.output or b"").decode(errors="replace")[-5000:]
        raise UserError(f"build step failed (exit {result.exit_code}); full log {log}:\n{tail}")


def build_packages(output_dir: Path = PACKAGES_DIR, *, check: bool = True) -> BuildResult:
    client = docker_client()
    version = upstream_version()
    with phase("fetching and verifying the upstream tarball"):
        orig = fetch_orig(output_dir.parent / "orig")
    with phase("preparing the build image"):
        image = builder_image(client)
    # Build beside the previous result and swap only on success: a failed
    # build leaves the last good packages (and their apt index) in place.
    staging = output_dir.with_name(output_dir.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    log = staging / "build.log"
    options = f"parallel={PARALLEL_JOBS}" + ("" if check else " nocheck")
    source_dir = f"{BUILD_ROOT}/{SOURCE_PACKAGE}-{version}"
    container = client.containers.run(
        image,
        ["sleep", "infinity"],
        detach=True,
        remove=True,
        volumes={
            str(DEBIAN_DIR): {"bind": "/debian", "mode": "ro"},
            str(orig.parent): {"bind": "/orig", "mode": "ro"},
            str(staging): {"bind": "/out", "mode": "rw"},
        },
        environment={"DEB_BUILD_OPTIONS": options, "LC_ALL": "C.UTF-8"},
    )
    try:
        with phase("unpacking the source"):
            _run(
                container,
                f"""
                mkdir -p {BUILD_ROOT} && cd {BUILD_ROOT}
                cp /orig/{orig.name} .
                tar -xf {orig.name}
                cp -a /debian {source_dir}/debian
            """,
                log,
            )
        with phase(f"dpkg-buildpackage (DEB_BUILD_OPTIONS={options})"):
            _run(container, f"cd {source_dir} && dpkg-buildpackage -us -uc 2>&1", log)
        with phase("indexing the local apt repository"):
            _run(
                container,
                f"""
                cd {BUILD_ROOT}
                cp {" ".join(RESULT_PATTERNS)} /out/
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _contents(deb: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["dpkg-deb", "-R", str(deb), scratch], check=True)
        listing = subprocess.run(
            ["find", ".", "-type", "f", "-exec", "sha256sum", "{}", "+"],
            cwd=scratch,
            capture_output=True,
            text=True,
            check=True,
        )
    return sorted(listing.stdout.splitlines())


def compare_builds(first: Path, second: Path) -> list[str]:
    """Names of the .debs that differ between two build directories, with what differs."""
    differences = []
    names = sorted({p.name for p in first.glob("*.deb")} | {p.name for p in second.glob("*.deb")})
    for name in names:
        a, b = first / name, second / name
        if not (a.exists() and b.exists()):
            differences.append(f"{name}: only in {first if a.exists() else second}")
        elif _sha256(a) != _sha256(b):
            changed = sorted(set(_contents(a)) ^ set(_contents(b)))
            files = sorted({line.split(maxsplit=1)[1] for line in changed})
            differences.append(f"{name}: differs in {', '.join(files) or 'archive metadata only'}")
    return differences
