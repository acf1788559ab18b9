"""A maintainer builds from the repository without the harness: README.md's plain
dpkg-buildpackage lines, run as written as root in a clean trixie container that has
nothing but a minbase system, dpkg-dev (which README.md asks for) and the repository with
its fetched orig tarball."""

import re

import pytest

from cyrus_deb.engine import run_to_completion
from cyrus_deb.images import base_image
from cyrus_deb.paths import REPO_ROOT
from cyrus_testbed.debian_control import binary_packages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = "/srv/repo"
BUILD_TIMEOUT_S = 1800
PREREQUISITE = "apt-get update && apt-get install -y --no-install-recommends dpkg-dev"


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
