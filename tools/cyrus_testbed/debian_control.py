"""What debian/control and debian/changelog declare, read with python-debian."""

from debian.changelog import Changelog
from debian.deb822 import Deb822

from cyrus_deb.paths import DEBIAN_DIR


def control_stanzas() -> list[Deb822]:
    with (DEBIAN_DIR / "control").open() as handle:
        return list(Deb822.iter_paragraphs(handle))


def binary_packages() -> list[str]:
    """Every binary package of the source, in debian/control's order."""
    return [stanza["Package"] for stanza in control_stanzas()[1:]]


def package_version() -> str:
    """The version debian/changelog gives the packages we build."""
    with (DEBIAN_DIR / "changelog").open() as handle:
        return str(Changelog(handle, max_blocks=1).version)


def dep8_test_names() -> list[str]:
    """The tests debian/tests/control declares, in its order."""
    with (DEBIAN_DIR / "tests" / "control").open() as handle:
        return [name for p in Deb822.iter_paragraphs(handle) for name in p["Tests"].split()]
