"""Each fault test breaks its machine: every test gets a new server of its own."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyrus_testbed.boot import CyrusServer, booted_server
from cyrus_testbed.disks import SMALL_DISKS, Ext4Disk, SmallDisk

# Room for the crash tests' thousand messages and Cyrus's databases; the image is sparse.
STATE_DISK_MIB = 512


@pytest.fixture
def crashable_server(images, server_images, target, packages_dir) -> Iterator[CyrusServer]:
    with booted_server(images, server_images, target, packages_dir) as server:
        yield server


@pytest.fixture
def server_with_its_store_on_the_root_file_system(
    images, server_images, target, packages_dir
) -> Iterator[CyrusServer]:
    """The store's directories are no mount points: they can be removed, as a lost
    disk's contents would be."""
    with booted_server(
        images, server_images, target, packages_dir, installed_in_place=True
    ) as server:
        yield server


@pytest.fixture
def server_on_its_own_disk(images, server_images, target, packages_dir) -> Iterator[CyrusServer]:
    """Cyrus's state on an ext4 image of its own, so that a power cut loses what was never
    synced; the image and its loop device are released whatever happens."""
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="cyrus-disk-") as directory:
        disk = Ext4Disk(Path(directory), STATE_DISK_MIB)
        try:
            with booted_server(
                images, server_images, target, packages_dir, state_disk=disk
            ) as server:
                disk.sync()
                yield server
        finally:
            disk.release()


SMALL_DISK_MIB = 32


@pytest.fixture(params=SMALL_DISKS, ids=str)
def small_disk(request) -> SmallDisk:
    return request.param


@pytest.fixture
def server_with_a_small_disk(
    small_disk: SmallDisk, images, server_images, target, packages_dir
) -> Iterator[CyrusServer]:
    """The server with one tree on a small ext4 image (journal, delayed allocation), as on
    a host; the image and its loop device are released whatever happens."""
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="cyrus-small-") as directory:
        disk = Ext4Disk(Path(directory), SMALL_DISK_MIB, {"tree": small_disk.path})
        try:
            with booted_server(
                images, server_images, target, packages_dir, state_disk=disk
            ) as server:
                yield server
        finally:
            disk.release()
