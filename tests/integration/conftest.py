"""The server most integration tests share: one per (distribution, init) and module."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cyrus_deb.clients import CyrusUsers, provision_users
from cyrus_deb.containers import DebianContainer

from ..conftest import boot

SERVER_PACKAGES = (
    "cyrus-imapd",
    "cyrus-pop3d",
    "cyrus-admin",
    "cyrus-clients",
    "sasl2-bin",
    "ssl-cert",
)


@dataclass(frozen=True)
class CyrusServer:
    """A booted system with the server packages installed and users provisioned."""

    machine: DebianContainer
    users: CyrusUsers


@pytest.fixture(scope="module")
def server(images, target, packages_dir) -> Iterator[CyrusServer]:
    machine = boot(images, target, packages_dir)
    try:
        machine.install(SERVER_PACKAGES)
        users = provision_users(machine)
        yield CyrusServer(machine, users)
    finally:
        machine.stop()
