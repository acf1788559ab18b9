"""A disk of its own for a test machine's state: an ext4 image on a loop device, mounted on
the host and bound into the container. Unlike a container's SIGKILL, its power cut loses what
was never synced: the file system is shut down without flushing its journal
(FS_IOC_SHUTDOWN, as xfstests simulates a power failure), then checked and mounted again as
a booting host would."""

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import docker

from cyrus_deb.errors import UserError

# Each tree lives in a directory of the image, bound at its place in the machine.
STATE_TREES = {
    "var-lib-cyrus": "/var/lib/cyrus",
    "var-spool-cyrus": "/var/spool/cyrus",
    "var-spool-sieve": "/var/spool/sieve",
}
CANARY = "unsynced-canary"
UNMOUNT_TIMEOUT_S = 30


@dataclass(frozen=True)
class FsckVerdict:
    """What `e2fsck -p` said at power on: 0 clean, 1 errors corrected, more is damage."""

    exit_code: int
    output: str

    @property
    def acceptable(self) -> bool:
        return self.exit_code in (0, 1)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _check(*command: str) -> str:
    result = _run(*command)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def require_power_cut_support() -> None:
    """The host must let us make and shut down file systems; say what is missing if not."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (loop devices and mount need it)")
    if not Path("/dev/loop-control").exists():
        missing.append("loop devices (/dev/loop-control; modprobe loop)")
    for program, package in (("xfs_io", "xfsprogs"), ("e2fsck", "e2fsprogs")):
        if not shutil.which(program):
            missing.append(f"{program} (apt-get install {package})")
    if missing:
        raise UserError("a real power cut needs " + ", ".join(missing))


class Ext4Disk:
    """An ext4 image file, loop-mounted at `mountpoint` while the machine runs."""

    def __init__(
        self, directory: Path, size_mib: int, trees: Mapping[str, str] = STATE_TREES
    ) -> None:
        """`trees`: directory of the image -> path in the machine it is bound to."""
        require_power_cut_support()
        self.trees = dict(trees)
        self.image = directory / "state.ext4"
        self.mountpoint = directory / "mnt"
        self.mountpoint.mkdir(parents=True)
        _check("truncate", "-s", f"{size_mib}M", str(self.image))
        # Debian's defaults (journal, delayed allocation, data=ordered): a host's disk.
        _check("mkfs.ext4", "-q", "-F", str(self.image))
        self._canary = ""
        self.mount()
        try:
            for tree in self.trees:
                (self.mountpoint / tree).mkdir()
        except OSError:
            self.release()
            raise

    def seed(self, client: docker.DockerClient, image: str, path: str) -> None:
        """Copy `path` as the image has it onto its tree of the disk (for a tree the image
        already fills, such as the dpkg database), before a machine binds it."""
        tree = next(tree for tree, bound in self.trees.items() if bound == path)
        client.containers.run(
            image,
            ["cp", "-a", f"{path}/.", "/seed/"],
            volumes={str(self.mountpoint / tree): {"bind": "/seed", "mode": "rw"}},
            remove=True,
        )
        self.sync()

    def sync(self) -> None:
        """Write everything out, as a host has long done for what was installed or copied
        before the test: the power cut then takes only what the test's own steps left
        unsynced."""
        _check("sync", "-f", str(self.mountpoint))

    def binds(self) -> dict[Path, str]:
        """Host directory -> path in the machine, for each state tree."""
        return {self.mountpoint / tree: path for tree, path in self.trees.items()}

    def mount(self) -> None:
        _check("mount", "-o", "loop", str(self.image), str(self.mountpoint))

    def is_mounted(self) -> bool:
        return _run("mountpoint", "-q", str(self.mountpoint)).returncode == 0

    def write_canary(self) -> None:
        """The rig's own unsynced write (the negative control): a power cut must lose it.
        A new file each time: ext4 writes at close the data of a file that was truncated
        (auto_da_alloc), so rewriting the same file would sync it by the back door."""
        self._canary = secrets.token_hex(16)
        with (self.mountpoint / f"{CANARY}-{self._canary}").open("xb") as canary:
            canary.write(self._canary.encode())  # no fsync, on purpose

    def canary_survived(self) -> bool:
        path = self.mountpoint / f"{CANARY}-{self._canary}"
        return bool(self._canary) and path.exists() and path.read_text() == self._canary

    def shut_down(self) -> None:
        """Stop the file system where it stands, without flushing the journal: what the disk
        holds is what a power cut would leave."""
        _check("xfs_io", "-x", "-c", "shutdown", str(self.mountpoint))

    def unmount(self) -> None:
        """Unmount once nothing uses the file system (the machine's processes may take a
        moment to go); the loop device goes with it."""
        deadline = time.monotonic() + UNMOUNT_TIMEOUT_S
        while self.is_mounted():
            result = _run("umount", str(self.mountpoint))
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot unmount {self.mountpoint}: {result.stderr}")
            time.sleep(0.2)

    def check(self) -> FsckVerdict:
        """e2fsck -p, as a booting Debian host runs it: replays the journal, fixes what is
        safe to fix."""
        result = _run("e2fsck", "-p", str(self.image))
        return FsckVerdict(result.returncode, (result.stdout + result.stderr).strip())

    def release(self) -> None:
        """Unmount and delete the image, whatever state the test left it in."""
        if self.is_mounted():
            _run("umount", "-l", str(self.mountpoint))
        self.image.unlink(missing_ok=True)


@dataclass(frozen=True)
class SmallDisk:
    """A small ext4 file system of its own under one of Cyrus's trees, to fill up."""

    what: str
    path: str
    # What is left free when the test fills it: room for a few dozen deliveries.
    left_free_kib: int

    def __str__(self) -> str:
        return self.what.replace(" ", "-")


SMALL_DISKS = [
    SmallDisk("mail partition", "/var/spool/cyrus", left_free_kib=600),
    SmallDisk("database directory", "/var/lib/cyrus", left_free_kib=16),
]
