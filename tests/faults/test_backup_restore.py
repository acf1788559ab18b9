"""The full backup README.Debian describes, as cyrus-backup(8) does it: back up, lose the
store, restore, and the store is as it was; a restore over a store keeps that one aside."""

import pytest

from cyrus_deb.clients import lmtp_deliver, make_message
from cyrus_deb.server_config import master_pid, reconfigured

from ..fingerprint import differences, fingerprint, message_count
from ..upgrade.store import CLIENT_PACKAGES
from .test_database_damage import populate

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ARCHIVE = "/root/cyrus-store.tar"
STORE = ("/var/lib/cyrus", "/var/spool/cyrus/mail", "/var/spool/sieve")


def test_a_store_backed_up_destroyed_and_restored_is_the_same_store(crashable_server, figures):
    machine, passwords = crashable_server.machine, crashable_server.users.passwords
    machine.check(f"apt-get install -y -q {' '.join(CLIENT_PACKAGES)} 2>&1")
    populate(machine, passwords)
    before = fingerprint(machine, passwords)
    pid = master_pid(machine)

    machine.check(f"cyrus-backup create {ARCHIVE}")
    assert master_pid(machine) != pid, "the backup was not taken with master stopped"
    machine.wait_for_tcp(143)  # started again
    assert machine.service("stop").ok
    machine.check(f"rm -rf {' '.join(STORE)}")  # the disk is lost

    machine.check(f"cyrus-backup restore {ARCHIVE}")
    machine.wait_for_tcp(143)
    after = fingerprint(machine, passwords)
    found = differences(before, after)
    figures(
        archive_bytes=int(machine.check(f"stat -c %s {ARCHIVE}")),
        messages_compared=message_count(after),
        differences=found,
    )
    assert not found, "\n".join(found)

    # Restoring over a store moves that store aside instead of deleting it.
    machine.check(f"cyrus-backup restore {ARCHIVE}")
    for path in STORE:
        machine.check(f"ls -d {path}.pre-restore-*")
    machine.wait_for_tcp(143)
    assert not differences(before, fingerprint(machine, passwords))


def test_restoring_from_something_that_is_not_an_archive_changes_nothing(crashable_server):
    machine = crashable_server.machine
    pid = master_pid(machine)
    refused = machine.exec("cyrus-backup restore /etc/hostname 2>&1")
    assert not refused.ok
    assert "is not a tar archive; nothing was changed" in refused.output, refused.output
    assert master_pid(machine) == pid
    assert machine.exec("ls -d /var/lib/cyrus.pre-restore-* 2>/dev/null").output == ""


def test_the_backup_holds_search_partitions_and_databases_moved_out_of_configdirectory(
    crashable_server,
):
    machine = crashable_server.machine
    moved = {
        "searchpartition-default": "/var/spool/cyrus/search",
        "duplicate_db_path": "/var/lib/cyrus-moved/deliver.db",
    }
    directories = "/var/spool/cyrus/search /var/lib/cyrus-moved"
    machine.check(f"install -d -o cyrus -g mail -m 0750 {directories}")
    with reconfigured(machine, options=moved):
        lmtp_deliver(machine, ["alice"], make_message("recorded in the moved duplicate db"))
        held = machine.check(f"cyrus-backup create {ARCHIVE}")
    members = machine.check(f"tar --list --absolute-names --file {ARCHIVE}").splitlines()
    for path in moved.values():
        assert path in held, held
        assert path in members or f"{path}/" in members, path
