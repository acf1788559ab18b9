"""Fetch the upstream orig tarball by name through apt and check it against the pinned sha256."""

import hashlib
import subprocess
from pathlib import Path

from debian.changelog import Changelog

from .errors import UserError
from .mirror import host_mirror
from .paths import DEBIAN_DIR, TARBALL_PINS, cache_dir
from .progress import say

SOURCE_PACKAGE = "cyrus-imapd"
# Suites whose source indexes may carry the tarball, newest first: unstable
# gets a new upstream first, trixie-backports keeps older ones around.
SOURCE_SUITES = ("sid", "forky", "trixie-backports", "trixie")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def upstream_version(debian_dir: Path = DEBIAN_DIR) -> str:
    with (debian_dir / "changelog").open() as handle:
        return Changelog(handle, max_blocks=1).upstream_version


def orig_name(version: str) -> str:
    return f"{SOURCE_PACKAGE}_{version}.orig.tar.xz"


def pinned_sha256(name: str, pins: Path = TARBALL_PINS) -> str:
    for line in pins.read_text().splitlines():
        digest, _, pinned_name = line.partition("  ")
        if pinned_name.strip() == name:
            return digest.strip()
    raise UserError(
        f"{pins} pins no sha256 for {name}.\n"
        f"Add the line '<sha256>  {name}' after checking the tarball against upstream's release."
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _apt(state: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """apt-get with its own sources and state, leaving the host's apt untouched."""
    options = [
        f"-oDir::Etc::SourceList={state / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={state / 'lists'}",
        f"-oDir::Cache={state / 'cache'}",
        "-oAPT::Sandbox::User=root",
        "-qq",
    ]
    return subprocess.run(
        ["apt-get", *options, *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def _uri_from_apt(state: Path, name: str) -> str | None:
    """The pool URI of `name`, from the first suite whose cyrus-imapd source lists it."""
    for suite in SOURCE_SUITES:
        result = _apt(state, "source", "--print-uris", f"{SOURCE_PACKAGE}/{suite}")
        for line in result.stdout.splitlines():
            words = line.split()
            if len(words) >= 2 and words[1] == name:
                return words[0].strip("'")
    return None


def fetch_orig(destination_dir: Path) -> Path:
    """Put the verified orig tarball in destination_dir; download it only when not cached."""
    version = upstream_version()
    name = orig_name(version)
    expected = pinned_sha256(name)
    cached = cache_dir() / name
    if not cached.exists() or sha256_of(cached) != expected:
        _download(name, expected, cached)
    destination_dir.mkdir(parents=True, exist_ok=True)
    target = destination_dir / name
    if not target.exists() or sha256_of(target) != expected:
        target.write_bytes(cached.read_bytes())
    return target


def _source_indexes(mirror: str) -> Path:
    """apt's state for the source indexes of SOURCE_SUITES on `mirror`, updated."""
    state = cache_dir() / "apt-sources"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(
        "".join(f"deb-src [signed-by={KEYRING}] {mirror} {suite} main\n" for suite in SOURCE_SUITES)
    )
    say(f"reading the source indexes of {mirror}")
    update = _apt(state, "update")
    if update.returncode != 0:
        raise UserError(f"apt-get update of the source indexes failed:\n{update.stderr}")
    return state


def debian_source_package(suite: str, destination_dir: Path) -> Path:
    """Debian's own cyrus-imapd source package of `suite`, downloaded and checked by apt
    against the archive's signed index; its .dsc."""
    state = _source_indexes(host_mirror())
    destination_dir.mkdir(parents=True, exist_ok=True)
    download = _apt(
        state, "source", "--download-only", f"{SOURCE_PACKAGE}/{suite}", cwd=destination_dir
    )
    found = sorted(destination_dir.glob(f"{SOURCE_PACKAGE}_*.dsc"))
    if download.returncode != 0 or not found:
        raise UserError(f"apt-get source {SOURCE_PACKAGE}/{suite} failed:\n{download.stderr}")
    return found[-1]


def _download(name: str, expected: str, cached: Path) -> None:
    mirror = host_mirror()
    state = _source_indexes(mirror)
    uri = _uri_from_apt(state, name)
    if uri is None:
        raise UserError(
            f"{name} is in none of the suites {', '.join(SOURCE_SUITES)} on {mirror}.\n"
            "Debian may have moved to a newer upstream: update debian/changelog and the pin in "
            "tools/upstream-tarballs.sha256, or put the tarball in " + str(cached.parent) + "."
        )
    partial = cached.with_suffix(".partial")
    say(f"downloading {uri}")
    download = subprocess.run(
        [
            "/usr/lib/apt/apt-helper",
            "-oAPT::Sandbox::User=root",
            "download-file",
            uri,
            str(partial),
            f"SHA256:{expected}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if download.returncode != 0:
        partial.unlink(missing_ok=True)
        raise UserError(
            f"Downloading {uri} failed, or its sha256 is not the pinned {expected}:\n"
            f"{download.stdout}{download.stderr}"
        )
    partial.rename(cached)
