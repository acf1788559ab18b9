"""Build as Debian's buildds do: sbuild's unshare backend, an unprivileged build user,
a chroot tarball from mmdebstrap, no network while debian/rules runs."""

import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .images import mmdebstrap_tarball

# Made by ./cyrus-deb (the bootstrap) on first use, with subordinate ids of its own.
BUILD_USER = "cyrus-deb-build"
SUBORDINATE_ID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))
EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True)
class BuildUser:
    name: str
    uid: int
    gid: int
    home: Path

    def run(self, command: list[str], cwd: Path, environment: Mapping[str, str] = EMPTY) -> int:
        """Run a command as this user (from root, through runuser); output is not captured."""
        prefix = ["runuser", "-u", self.name, "--"] if os.geteuid() == 0 else []
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.home), "LC_ALL": "C.UTF-8"}
        return subprocess.run([*prefix, *command], cwd=cwd, env={**env, **environment}).returncode

    def give(self, path: Path) -> None:
        """Hand a directory we made to the build user, recursively."""
        for entry in [path, *path.rglob("*")]:
            os.lchown(entry, self.uid, self.gid)


def build_user(id_files: tuple[Path, ...] = SUBORDINATE_ID_FILES) -> BuildUser:
    """The unprivileged account sbuild runs as; explains how to make it when missing."""
    name = BUILD_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise UserError(
            f"the build user {name} does not exist: run ./cyrus-deb as root once, or\n"
            f"  useradd --create-home --home-dir /var/lib/{name} --shell /usr/sbin/nologin {name}"
        ) from None
    for path in id_files:
        lines = path.read_text().splitlines() if path.exists() else []
        if not any(line.split(":")[0] in (name, str(entry.pw_uid)) for line in lines):
            raise UserError(
                f"{name} has no range in {path}: sbuild's unshare backend maps the chroot's"
                f" users onto it.\nGive it 65536 ids no other line of {path} uses, e.g.\n"
                f"  usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}"
            )
    for tool in ("sbuild", "newuidmap", "mmdebstrap"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} is missing: apt-get install sbuild uidmap mmdebstrap")
    return BuildUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


@dataclass(frozen=True)
class Chroot:
    distribution: str
    tarball: Path


def chroot_tarball(user: BuildUser, distribution: str) -> Chroot:
    """A buildd-variant chroot of the distribution, made once, in sbuild's own place."""
    directory = user.home / ".cache" / "sbuild"
    # Device nodes cannot be made in a user namespace; sbuild binds the host's.
    tarball = mmdebstrap_tarball(directory, distribution, "buildd", "--skip=output/dev")
    user.give(directory)
    return Chroot(distribution, tarball)


def sbuild(
    user: BuildUser, dsc: Path, chroot: Chroot, *, jobs: int, check: bool, log: Path
) -> Path:
    """Build source and binary packages from the .dsc into a directory of results, which it
    returns; the output streams as it comes, and sbuild's log is copied to `log`."""
    results = dsc.parent / "results"
    results.mkdir()
    user.give(results)
    command = [
        "sbuild",
        "--chroot-mode=unshare",
        f"--chroot={chroot.tarball}",
        f"--dist={chroot.distribution}",
        "--arch-all",
        "--source",
        f"--jobs={jobs}",
        f"--build-dir={results}",
        # lintian runs on the result in the QA image, with the distribution's lintian.
        "--no-run-lintian",
        "--no-run-piuparts",
        "--no-run-autopkgtest",
        "--verbose",
        *([] if check else ["--profiles=nocheck"]),
        str(dsc),
    ]
    status = user.run(command, dsc.parent, {} if check else {"DEB_BUILD_OPTIONS": "nocheck"})
    logs = sorted(results.glob("*Z.build"))
    if logs:
        shutil.copyfile(logs[-1], log)
    if status != 0:
        tail = log.read_text(errors="replace")[-5000:] if logs else ""
        raise UserError(f"sbuild failed (exit {status}); full log {log}:\n{tail}")
    return results
