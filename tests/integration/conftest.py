"""The server most integration tests share: one per (distribution, init) and module."""

from collections.abc import Iterator

import pytest

from cyrus_testbed.boot import CyrusServer, booted_server


@pytest.fixture(scope="module")
def server(images, server_images, target, packages_dir) -> Iterator[CyrusServer]:
    with booted_server(images, server_images, target, packages_dir) as server:
        yield server


@pytest.fixture(scope="module")
def caldav_server(server: CyrusServer) -> CyrusServer:
    """The module's server with cyrus-caldav: httpd on 8008 and 8443."""
    server.machine.install(["cyrus-caldav"])
    server.machine.wait_for_tcp(8443)
    return server
