"""piuparts, as piuparts.debian.org runs it, on every binary package we build: each one
installed alone on a clean trixie system and purged, with nothing left behind (files,
processes, broken links, changed files of other packages); and Debian 13's own packages, and
those of trixie-backports, upgraded to ours and purged.

piuparts makes a chroot of its own from a minbase tarball and mounts /proc and /dev/pts in
it: it runs in a trixie container with CAP_SYS_ADMIN, the capability our systemd machines
get. (piuparts 1.6, trixie's, does not install on Debian 12; its --docker-image mode needs an
overlay2 engine.) Each run's log is kept in build/reports/piuparts/."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from cyrus_deb.engine import run_to_completion
from cyrus_deb.images import APT_INSTALL, Recipe, base_image, ensure_image, minbase_tarball
from cyrus_deb.mirror import host_mirror
from cyrus_deb.paths import REPORTS_DIR
from cyrus_testbed.boot import DISTRIBUTION
from cyrus_testbed.debian_control import binary_packages, package_version

PACKAGES = "/srv/packages"
BASE_TARBALL = "/srv/base.tar"
SCRIPTS = "/srv/scripts"
BACKPORTS = f"{DISTRIBUTION}-backports"
# Debian's backport of 3.12, which its users upgrade from: every package we build exists
# there (apt-get source --print-uris cyrus-imapd/trixie-backports).
BACKPORT_VERSION = "3.12.3-1~bpo13+1"
RUN_TIMEOUT_S = 900
# The first test also makes the base tarball and piuparts' image.
pytestmark = [pytest.mark.piuparts, pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT_S + 600)]
# Made by systemd's tmpfiles when systemd, which cyrus-common depends on, is set up:
# piuparts' install-and-purge test recognises each from systemd's own snippets (its log
# says IGNORED PATH), its upgrade test does not. None is ours.
MADE_BY_SYSTEMD = (
    "/root/.ssh/",
    "/var/cache/private/",
    "/var/lib/private/",
    "/var/log/private/",
    "/etc/default/locale",
    "/etc/vconsole.conf",
)


@dataclass(frozen=True)
class PiupartsRun:
    exit_code: int
    log: Path

    def says(self, verdict: str) -> bool:
        return f"PASS: {verdict}" in self.log.read_text(errors="replace")

    def findings(self) -> str:
        """What piuparts reported as failing, with the lines that say what."""
        lines = self.log.read_text(errors="replace").splitlines()
        first = next((i for i, line in enumerate(lines) if "FAIL:" in line), len(lines) - 40)
        return "\n".join(lines[first : first + 60])


@pytest.fixture(scope="session")
def piuparts_image(docker_engine) -> str:
    parent = base_image(docker_engine, DISTRIBUTION)
    body = f"RUN {APT_INSTALL} piuparts && apt-get clean\n"
    return ensure_image(docker_engine, Recipe(f"piuparts-{DISTRIBUTION}", parent, body))


@pytest.fixture(scope="session")
def piuparts(docker_engine, piuparts_image, packages_dir):
    tarball = minbase_tarball(DISTRIBUTION)
    mirror = host_mirror()

    def run(name: str, arguments: list[str], scripts: Path | None = None) -> PiupartsRun:
        volumes = {
            str(packages_dir): {"bind": PACKAGES, "mode": "ro"},
            str(tarball): {"bind": BASE_TARBALL, "mode": "ro"},
        }
        if scripts is not None:
            volumes[str(scripts)] = {"bind": SCRIPTS, "mode": "ro"}
            arguments = [f"--scriptsdir={SCRIPTS}", *arguments]
        finished = run_to_completion(
            docker_engine,
            piuparts_image,
            [
                "piuparts",
                f"--basetgz={BASE_TARBALL}",
                f"--distribution={DISTRIBUTION}",
                f"--mirror={mirror}",
                *arguments,
            ],
            timeout_s=RUN_TIMEOUT_S,
            cap_add=["SYS_ADMIN"],
            volumes=volumes,
        )
        log = REPORTS_DIR / "piuparts" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(finished.output)
        return PiupartsRun(finished.exit_code, log)

    return run


@pytest.mark.parametrize(
    "package",
    [
        pytest.param(package, marks=pytest.mark.quick) if package == "cyrus-imapd" else package
        for package in binary_packages()
    ],
)
def test_piuparts_installs_the_package_alone_and_purges_it_leaving_nothing(piuparts, package):
    result = piuparts(
        f"install-purge-{package}",
        [
            f"--bindmount={PACKAGES}",
            f"--extra-repo=deb [trusted=yes] file://{PACKAGES} ./",
            "--apt",
            package,
        ],
    )
    assert result.exit_code == 0, result.findings()
    assert result.says("Installation and purging test.")


def our_debs(packages_dir: Path) -> list[str]:
    packages = set(binary_packages())
    ours = sorted(
        f"{PACKAGES}/{deb.name}"
        for deb in packages_dir.glob("*.deb")
        if deb.name.split("_")[0] in packages
    )
    assert len(ours) == len(packages)
    return ours


def test_piuparts_upgrades_debian_13s_packages_to_ours_and_purges_them_leaving_nothing(
    piuparts, packages_dir
):
    result = piuparts(
        "upgrade-from-trixie",
        [
            "--no-install-purge-test",
            *(f"--ignore={path}" for path in MADE_BY_SYSTEMD),
            *our_debs(packages_dir),
        ],
    )
    assert result.exit_code == 0, result.findings()
    assert result.says("Installation, upgrade and purging tests.")


def test_piuparts_upgrades_trixie_backports_packages_to_ours_and_purges_them_leaving_nothing(
    piuparts, packages_dir, tmp_path
):
    # Backports are NotAutomatic: a system installs from them only when pinned, as an
    # administrator who uses them does. piuparts runs post_setup_* scripts in its chroot
    # once apt is set up, before it installs the archive's packages.
    prefer_backports = tmp_path / "post_setup_prefer_backports"
    prefer_backports.write_text(
        "#!/bin/sh\n"
        "set -e\n"
        "cat > /etc/apt/preferences.d/cyrus-from-backports <<EOF\n"
        "Package: src:cyrus-imapd\n"
        f"Pin: release n={BACKPORTS}\n"
        "Pin-Priority: 990\n"
        "EOF\n"
    )
    prefer_backports.chmod(0o755)
    result = piuparts(
        "upgrade-from-trixie-backports",
        [
            "--no-install-purge-test",
            f"--extra-repo=deb {host_mirror()} {BACKPORTS} main",
            *(f"--ignore={path}" for path in MADE_BY_SYSTEMD),
            *our_debs(packages_dir),
        ],
        scripts=tmp_path,
    )
    assert result.exit_code == 0, result.findings()
    assert result.says("Installation, upgrade and purging tests.")
    log = result.log.read_text(errors="replace")
    upgraded = f"({package_version()}) over ({BACKPORT_VERSION})"
    for package in binary_packages():
        assert f"Unpacking {package} {upgraded}" in log, package
