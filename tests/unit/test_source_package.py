"""The debian/ tree: package set, versions, content definitions, scripts."""

import fnmatch
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from debian.changelog import Changelog
from debian.copyright import Copyright, FilesParagraph, License, LicenseParagraph
from debian.deb822 import Deb822
from debian.debian_support import Version

from cyrus_deb.paths import DEBIAN_DIR, cache_dir
from cyrus_deb.upstream import orig_name, upstream_version
from cyrus_testbed.debian_control import binary_packages, control_stanzas

EXPECTED_PACKAGES = {
    "cyrus-common",
    "cyrus-imapd",
    "cyrus-pop3d",
    "cyrus-admin",
    "cyrus-clients",
    "cyrus-murder",
    "cyrus-replication",
    "cyrus-nntpd",
    "cyrus-caldav",
    "cyrus-dev",
    "libcyrus-imap-perl",
    "cyrus-doc",
}
DEBIAN_TRIXIE_VERSION = Version("3.10.2-1+deb13u2")
DEBIAN_BACKPORT_VERSION = Version("3.12.3-1~bpo13+1")
MAINTAINER_SCRIPTS = sorted(
    p
    for p in DEBIAN_DIR.iterdir()
    if p.name.endswith((".postinst", ".postrm", ".preinst", ".prerm", ".init"))
)


def test_control_declares_exactly_the_expected_binary_packages():
    assert set(binary_packages()) == EXPECTED_PACKAGES


def test_source_uses_debhelper_compat_13_and_sysusers():
    build_depends = control_stanzas()[0]["Build-Depends"]
    assert "debhelper-compat (= 13)" in build_depends
    assert "dh-sequence-installsysusers" in build_depends


@pytest.mark.parametrize("package", sorted(EXPECTED_PACKAGES))
def test_every_binary_package_has_a_content_definition(package):
    definitions = [DEBIAN_DIR / f"{package}.install", DEBIAN_DIR / f"{package}.docs"]
    assert any(path.exists() and path.read_text().strip() for path in definitions)


def test_changelog_version_sorts_above_debian_trixie_and_its_backport():
    with (DEBIAN_DIR / "changelog").open() as handle:
        version = Changelog(handle).version
    assert version > DEBIAN_TRIXIE_VERSION
    assert version > DEBIAN_BACKPORT_VERSION
    assert version.upstream_version == "3.12.4"


def test_source_format_is_quilt():
    assert (DEBIAN_DIR / "source" / "format").read_text().strip() == "3.0 (quilt)"


def test_copyright_is_machine_readable():
    with (DEBIAN_DIR / "copyright").open() as handle:
        header = next(Deb822.iter_paragraphs(handle))
    assert header["Format"].startswith("https://www.debian.org/doc/packaging-manuals/copyright")


def orig_members() -> list[str]:
    """Paths in the orig tarball, without its top directory; it is in the cache once
    `./cyrus-deb build` has fetched it."""
    orig = cache_dir() / orig_name(upstream_version())
    if not orig.exists():
        pytest.fail(f"no {orig}: run `./cyrus-deb build` first")
    with tarfile.open(orig) as archive:
        return [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]


def test_every_files_pattern_of_debian_copyright_names_files_of_the_orig_tarball():
    with (DEBIAN_DIR / "copyright").open() as handle:
        paragraphs = list(Copyright(handle).all_files_paragraphs())
    members = orig_members()
    unmatched = [
        pattern
        for paragraph in paragraphs
        for pattern in paragraph.files
        if not pattern.startswith("debian/")
        and pattern != "*"
        and not any(fnmatch.fnmatchcase(member, pattern) for member in members)
    ]
    assert unmatched == []


def test_the_orig_tarball_holds_nothing_that_files_excluded_removes():
    """Debian's orig is already the repack that debian/copyright and README.source describe."""
    with (DEBIAN_DIR / "copyright").open() as handle:
        excluded = Copyright(handle).header.files_excluded
    assert excluded, "debian/copyright lists no Files-Excluded"
    members = orig_members()
    still_there = [
        member
        for member in members
        for pattern in excluded
        if fnmatch.fnmatchcase(member, pattern) or fnmatch.fnmatchcase(member, pattern + "/*")
    ]
    assert still_there == []
    assert any(m.startswith("docsrc/exts/sphinxlocal/") for m in members)


def _license(paragraph: FilesParagraph | LicenseParagraph) -> License:
    found = paragraph.license
    assert isinstance(found, License), found
    return found


def test_every_licence_debian_copyright_names_has_its_text():
    with (DEBIAN_DIR / "copyright").open() as handle:
        copyright_file = Copyright(handle)
    standalone = {
        _license(paragraph).synopsis for paragraph in copyright_file.all_license_paragraphs()
    }
    missing = {
        name
        for paragraph in copyright_file.all_files_paragraphs()
        if not _license(paragraph).text
        for name in re.split(r" and | or ", _license(paragraph).synopsis)
        if name not in standalone
    }
    assert missing == set()


def test_every_patch_has_a_dep3_header_lintian_reads():
    series = DEBIAN_DIR / "patches" / "series"
    patches = series.read_text().split() if series.exists() else []
    for name in patches:
        header = Deb822((DEBIAN_DIR / "patches" / name).read_text().split("\n---", 1)[0])
        assert "Description" in header or "Subject" in header, name
        # lintian knows a patch is not forwarded only from a bare "no"; "no, because..." reads
        # to it as forwarded. Where it went is a URL.
        origin = header.get("Origin", "").split(",")[0].strip()
        forwarded = header.get("Forwarded", "")
        assert (
            origin in ("upstream", "backport")
            or forwarded in ("no", "not-needed")
            or re.match(r"https?://", forwarded)
        ), f"{name}: Forwarded: {forwarded!r}"


@pytest.mark.parametrize("script", MAINTAINER_SCRIPTS, ids=lambda p: p.name)
def test_maintainer_script_parses_with_sh_n(script: Path):
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# The LSB init script checks each command's status itself instead.
@pytest.mark.parametrize(
    "script", [p for p in MAINTAINER_SCRIPTS if p.suffix != ".init"], ids=lambda p: p.name
)
def test_maintainer_script_stops_on_errors(script: Path):
    assert "\nset -e\n" in script.read_text()
