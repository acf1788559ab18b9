"""Each fault test breaks its machine: every test gets a new server of its own."""

from collections.abc import Iterator

import pytest

from ..conftest import CyrusServer, booted_server


@pytest.fixture
def crashable_server(images, target, packages_dir) -> Iterator[CyrusServer]:
    with booted_server(images, target, packages_dir) as server:
        yield server


# Small enough to fill with a few hundred generated messages.
SMALL_SPOOL = {"/var/spool/cyrus/mail": "size=8m,mode=0750"}


@pytest.fixture
def server_with_a_small_spool(images, target, packages_dir) -> Iterator[CyrusServer]:
    """The mail partition on its own 8 MiB tmpfs, as a small disk."""
    with booted_server(images, target, packages_dir, SMALL_SPOOL) as server:
        yield server
