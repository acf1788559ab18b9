"""Where the project's files and the per-machine caches live."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEBIAN_DIR = REPO_ROOT / "debian"
PACKAGES_DIR = REPO_ROOT / "build" / "packages"
TARBALL_PINS = REPO_ROOT / "tools" / "upstream-tarballs.sha256"


def cache_dir() -> Path:
    """Machine-wide cache (tarballs, apt indexes), shared by every clone."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base / "cyrus-deb"
    path.mkdir(parents=True, exist_ok=True)
    return path
