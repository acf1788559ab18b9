"""Every upgrade test compares fingerprints with `assert_store_unchanged`, which also records
what it compared in the run's figures (build/reports/upgrade.json)."""

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cyrus_testbed.boot import boot
from cyrus_testbed.disks import STATE_TREES, Ext4Disk
from cyrus_testbed.fingerprint import Fingerprint
from cyrus_testbed.machine import DebianContainer

# The store and the dpkg database on one disk, which the power cut of an upgrade cuts.
STATE_AND_DPKG = {**STATE_TREES, "var-lib-dpkg": "/var/lib/dpkg"}
DISK_MIB = 1024


@pytest.fixture
def assert_store_unchanged(figures) -> Callable[..., None]:
    def compare(before: Fingerprint, after: Fingerprint, step: str = "after the upgrade") -> None:
        found = before.differences(after)
        figures(step=step, messages_compared=after.message_count, differences=found)
        assert not found, "\n".join(found)

    return compare


@pytest.fixture
def fresh_machine_on_its_own_disk(
    docker_engine, images, target, packages_dir
) -> Iterator[DebianContainer]:
    """A booted system with nothing of ours installed, whose Cyrus state and dpkg database
    live on an ext4 image of their own; released whatever happens."""
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="cyrus-upgrade-disk-") as directory:
        disk = Ext4Disk(Path(directory), DISK_MIB, STATE_AND_DPKG)
        try:
            disk.seed(docker_engine, images[target], "/var/lib/dpkg")
            machine = boot(images, target, packages_dir, state_disk=disk)
            try:
                yield machine
            finally:
                machine.stop()
        finally:
            disk.release()
