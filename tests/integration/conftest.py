"""The server most integration tests share: one per (distribution, init) and module."""

from collections.abc import Iterator

import pytest

from ..conftest import CyrusServer, booted_server


@pytest.fixture(scope="module")
def server(images, target, packages_dir) -> Iterator[CyrusServer]:
    with booted_server(images, target, packages_dir) as server:
        yield server
