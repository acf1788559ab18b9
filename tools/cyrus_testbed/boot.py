"""Booting the machines a test needs: its target (distribution and init system), the images
made for it, and a running Cyrus server on one of them."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker

from .clients import CyrusUsers
from .disks import Ext4Disk
from .machine import DebianContainer
from .server_config import wait_until_serving
from .server_image import SERVER_HOSTNAME, install_server, server_users

DISTRIBUTION = "trixie"


@dataclass(frozen=True)
class Target:
    distribution: str
    init: str

    def __str__(self) -> str:
        return f"{self.distribution}-{self.init}"


ImageMaker = Callable[[docker.DockerClient, str, str, Path], str]


class ImagesByTarget(dict[Target, str]):
    """Image tags by target, each made (or found cached) on first use."""

    def __init__(self, client: docker.DockerClient, repo: Path, make: ImageMaker) -> None:
        super().__init__()
        self.client, self.repo, self.make = client, repo, make

    def __missing__(self, target: Target) -> str:
        self[target] = self.make(self.client, target.distribution, target.init, self.repo)
        return self[target]


def boot(
    images: ImagesByTarget,
    target: Target,
    packages_dir: Path,
    *,
    ipv6_loopback: bool = False,
    state_disk: Ext4Disk | None = None,
    state_on_volumes: bool = False,
    hostname: str | None = None,
) -> DebianContainer:
    """A booted machine; Cyrus's state lives on `state_disk` when given, or on volumes made
    from the image's (state_on_volumes)."""
    machine = DebianContainer(
        images[target],
        target.init,
        packages_dir,
        ipv6_loopback=ipv6_loopback,
        state_disk=state_disk,
        state_on_volumes=state_on_volumes,
        hostname=hostname,
    )
    return machine.start()


@dataclass(frozen=True)
class CyrusServer:
    """A booted system with the server packages installed and users provisioned."""

    machine: DebianContainer
    users: CyrusUsers


@contextmanager
def booted_server(
    images: ImagesByTarget,
    server_images: ImagesByTarget,
    target: Target,
    packages_dir: Path,
    *,
    state_disk: Ext4Disk | None = None,
    installed_in_place: bool = False,
) -> Iterator[CyrusServer]:
    """A new machine with the server packages and the users alice and bob; removed after.
    It boots the installed server's image, with Cyrus's state on volumes. A machine whose
    state lives on a disk of its own installs on that disk instead (the image's state would
    be hidden under it), and so does one `installed_in_place`, whose state trees are plain
    directories of its root file system."""
    installed_in_place = installed_in_place or state_disk is not None
    if installed_in_place:
        machine = boot(images, target, packages_dir, state_disk=state_disk)
    else:
        machine = boot(
            server_images, target, packages_dir, state_on_volumes=True, hostname=SERVER_HOSTNAME
        )
    try:
        if installed_in_place:
            users = install_server(machine)
        else:
            users = server_users()
            wait_until_serving(machine)
        yield CyrusServer(machine, users)
    finally:
        machine.stop()
