"""Where the project's files and the per-machine caches live."""

import fcntl
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .progress import say

REPO_ROOT = Path(__file__).resolve().parents[2]
DEBIAN_DIR = REPO_ROOT / "debian"
PACKAGES_DIR = REPO_ROOT / "build" / "packages"
# What the tests measured and report: JUnit, figures, autopkgtest and piuparts logs.
REPORTS_DIR = REPO_ROOT / "build" / "reports"
TARBALL_PINS = REPO_ROOT / "tools" / "upstream-tarballs.sha256"


def cache_dir() -> Path:
    """Machine-wide cache (tarballs, apt indexes), shared by every clone."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base / "cyrus-deb"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def made_by_one_run(name: str) -> Iterator[None]:
    """Held while a machine-wide artefact (an image, a tarball) named `name` is made: test
    environments run in parallel, and runs of other checkouts, would otherwise make it
    twice at once, or write one file together. The caller checks again for the artefact
    once it holds the lock. The kernel releases it when its holder dies."""
    locks = cache_dir() / "locks"
    locks.mkdir(exist_ok=True)
    file_name = re.sub(r"[^\w.-]", "_", name)
    with (locks / f"{file_name}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another run making {name}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def made_once(name: str, exists: Callable[[], bool], make: Callable[[], None]) -> None:
    """Make the machine-wide artefact `name` unless it `exists`. Test environments run in
    parallel, and runs of other checkouts: one makes it under made_by_one_run while the
    others wait, then find it made (they look again once they hold the lock)."""
    if exists():
        return
    with made_by_one_run(name):
        if not exists():
            make()
