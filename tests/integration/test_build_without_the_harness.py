"""A maintainer builds from the repository without the harness: README.md's plain
dpkg-buildpackage lines and its gbp lines, run as written as root in a clean trixie
container that has nothing but a minbase system, the tool README.md asks for and the
repository with its fetched orig tarball."""

import hashlib
import re
import tarfile
from pathlib import Path

import pytest

from cyrus_deb.engine import run_to_completion
from cyrus_deb.images import base_image
from cyrus_deb.paths import REPO_ROOT
from cyrus_testbed.debian_control import binary_packages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = "/srv/repo"
BUILD_TIMEOUT_S = 1800
PREREQUISITE = "apt-get update && apt-get install -y --no-install-recommends dpkg-dev"
GBP_PREREQUISITE = "apt-get update && apt-get install -y --no-install-recommends git-buildpackage"
GBP_TIMEOUT_S = 900


def readme_block_after(line: str) -> str:
    """The fenced shell block that follows `line` of README.md."""
    text = (REPO_ROOT / "README.md").read_text()
    assert line in text, f"README.md no longer says {line!r}"
    found = re.search(r"```sh\n(.*?)```", text.split(line, 1)[1], re.DOTALL)
    assert found, f"no shell block after {line!r}"
    return found.group(1)


@pytest.mark.timeout(BUILD_TIMEOUT_S + 120)
def test_plain_dpkg_buildpackage_as_readme_shows_builds_every_package(docker_engine):
    commands = readme_block_after("Then plain `dpkg-buildpackage`")
    assert "dpkg-buildpackage" in commands
    assert (REPO_ROOT / "build" / "orig").is_dir(), "README's ./cyrus-deb fetch-orig has not run"
    finished = run_to_completion(
        docker_engine,
        base_image(docker_engine, "trixie"),
        ["sh", "-euxc", f"{PREREQUISITE}\n{commands}\nls /tmp/build-area"],
        timeout_s=BUILD_TIMEOUT_S,
        working_dir=REPO,
        # A maintainer's own build options: both cores; and no upstream unit tests, which
        # sbuild's build of the same source has just run (and gates on).
        environment={
            "DEBIAN_FRONTEND": "noninteractive",
            "DEB_BUILD_OPTIONS": "nocheck parallel=2",
        },
        volumes={str(REPO_ROOT): {"bind": REPO, "mode": "ro"}},
    )
    assert finished.exit_code == 0, finished.output[-6000:]
    lines = finished.output.splitlines()
    built = {line.split("_")[0] for line in lines if line.endswith(".deb")}
    assert built >= set(binary_packages()), finished.output[-3000:]


def debian_tarball_members(path: Path) -> dict[str, str]:
    """Each file of a debian.tar.xz, by name, with the sha256 of its content."""
    members = {}
    with tarfile.open(path) as tarball:
        for member in tarball.getmembers():
            content = tarball.extractfile(member)
            if content is not None:
                members[member.name] = hashlib.sha256(content.read()).hexdigest()
    return members


@pytest.mark.timeout(GBP_TIMEOUT_S + 120)
def test_gbp_buildpackage_as_readme_shows_makes_the_source_package_our_build_makes(
    docker_engine, tmp_path
):
    """gbp exports the committed HEAD, as it would in a maintainer's clone: debian/gbp.conf's
    overlay on the fetched orig, and .gitattributes keeping all but debian/ out."""
    block = readme_block_after("In a clone, with git-buildpackage")
    assert "gbp buildpackage" in block
    # ./cyrus-deb fetch-orig has run on this side (the orig below is what it fetched); the
    # container has the clone and the Debian tools, not the harness.
    commands = "\n".join(
        line for line in block.splitlines() if not line.startswith("./cyrus-deb fetch-orig")
    )
    ours = sorted((REPO_ROOT / "build" / "packages").glob("*.debian.tar.xz"))
    assert ours, "./cyrus-deb build has not run"
    orig = sorted((REPO_ROOT / "build" / "orig").glob("*.orig.tar.xz"))
    assert orig, "README's ./cyrus-deb fetch-orig has not run"
    clone = "/tmp/cyrus-deb"
    finished = run_to_completion(
        docker_engine,
        base_image(docker_engine, "trixie"),
        [
            "sh",
            "-euxc",
            f"{GBP_PREREQUISITE}\n"
            f"git clone {REPO} {clone} && cd {clone}\n"
            # gbp builds from debian-branch (main); a run on another branch tests its HEAD.
            "git checkout -B main\n"
            f"mkdir -p build/orig && cp {REPO}/build/orig/{orig[-1].name} build/orig/\n"
            f"{commands}\n"
            "cp ../build-area/*.dsc ../build-area/*.debian.tar.xz /srv/out/",
        ],
        timeout_s=GBP_TIMEOUT_S,
        environment={"DEBIAN_FRONTEND": "noninteractive"},
        volumes={
            str(REPO_ROOT): {"bind": REPO, "mode": "ro"},
            str(tmp_path): {"bind": "/srv/out", "mode": "rw"},
        },
    )
    assert finished.exit_code == 0, finished.output[-6000:]
    made_by_gbp = sorted(tmp_path.glob("*.debian.tar.xz"))
    assert [path.name for path in made_by_gbp] == [ours[-1].name], finished.output[-3000:]
    assert debian_tarball_members(made_by_gbp[0]) == debian_tarball_members(ours[-1]), (
        "gbp's debian.tar.xz (debian/ of the commit HEAD) differs from the one of"
        " ./cyrus-deb build: commit debian/ and build again"
    )
    dsc = next(tmp_path.glob("*.dsc")).read_text()
    orig_sha256 = hashlib.sha256(orig[-1].read_bytes()).hexdigest()
    assert f"{orig_sha256} {orig[-1].stat().st_size} {orig[-1].name}" in dsc
