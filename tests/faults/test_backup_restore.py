"""The full backup README.Debian describes, as cyrus-backup(8) does it: back up, lose the
store, restore, and the store is as it was; a restore over a store keeps that one aside."""

import pytest

from cyrus_testbed.clients import lmtp_deliver, make_message
from cyrus_testbed.fingerprint import fingerprint
from cyrus_testbed.init_systems import cron_entry, run_by_cron
from cyrus_testbed.mailbox import fill_with_mail_and_folders
from cyrus_testbed.readme_debian import block_after
from cyrus_testbed.server_config import master_pid, reconfigured
from cyrus_testbed.store import CLIENT_PACKAGES

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ARCHIVE = "/root/cyrus-store.tar"
STORE = ("/var/lib/cyrus", "/var/spool/cyrus/mail", "/var/spool/sieve")


def test_a_store_backed_up_from_roots_crontab_destroyed_and_restored_is_the_same_store(
    server_with_its_store_on_the_root_file_system, figures
):
    """The backup as a root crontab takes it at night: run by cron, with cron's PATH."""
    server = server_with_its_store_on_the_root_file_system
    machine, passwords = server.machine, server.users.passwords
    machine.check(f"apt-get install -y -q {' '.join(CLIENT_PACKAGES)} 2>&1")
    fill_with_mail_and_folders(machine, passwords)
    before = fingerprint(machine, passwords)
    pid = master_pid(machine)

    cron_line = block_after("here in /etc/cron.d/cyrus-backup, writing to a directory").strip()
    user_and_command = cron_entry(cron_line)
    archive_path = user_and_command.split()[-1]
    machine.check(f"mkdir -p {archive_path.rsplit('/', 1)[0]}")  # the backup disk
    run_by_cron(machine, machine.init, user_and_command)
    machine.wait_for_tcp(143)  # started again, its pid file written
    assert master_pid(machine) != pid, "the backup was not taken with master stopped"
    # All mail, /etc/sasldb2 and imapd.conf: root's alone.
    archive = machine.host.file(archive_path)
    assert (archive.user, archive.mode) == ("root", 0o600)
    assert machine.service("stop").ok
    machine.check(f"rm -rf {' '.join(STORE)}")  # the disk is lost

    machine.check(f"cyrus-backup restore {archive_path}")
    machine.wait_for_tcp(143)
    after = fingerprint(machine, passwords)
    found = before.differences(after)
    figures(
        archive_bytes=archive.size,
        messages_compared=after.message_count,
        differences=found,
    )
    assert not found, "\n".join(found)

    # Restoring over a store moves that store aside instead of deleting it.
    machine.check(f"cyrus-backup restore {archive_path}")
    for path in STORE:
        machine.check(f"ls -d {path}.pre-restore-*")
    machine.wait_for_tcp(143)
    assert not before.differences(fingerprint(machine, passwords))


# The trees that are mount points on crashable_server's machine (Docker volumes), as on a
# host that keeps them on disks of their own; /var/spool/cyrus/mail lies inside another.
MOUNTED_TREES = ("/var/lib/cyrus", "/var/spool/sieve")


def test_a_store_on_disks_of_its_own_is_restored_onto_new_empty_disks(crashable_server, figures):
    machine, passwords = crashable_server.machine, crashable_server.users.passwords
    for tree in MOUNTED_TREES:
        machine.check(f"mountpoint -q {tree}")  # the rig: each is a file system of its own
    machine.check(f"apt-get install -y -q {' '.join(CLIENT_PACKAGES)} 2>&1")
    fill_with_mail_and_folders(machine, passwords)
    before = fingerprint(machine, passwords)
    machine.check(f"cyrus-backup create {ARCHIVE}")
    machine.wait_for_tcp(143)
    assert machine.service("stop").ok
    # The disks are lost; the new ones hold nothing but lost+found.
    for tree in MOUNTED_TREES:
        machine.check(f"find {tree} -mindepth 1 -delete && install -d -m 700 {tree}/lost+found")
    machine.check("rm -rf /var/spool/cyrus/mail")

    machine.check(f"cyrus-backup restore {ARCHIVE}")
    machine.wait_for_tcp(143)
    after = fingerprint(machine, passwords)
    found = before.differences(after)
    figures(messages_compared=after.message_count, differences=found)
    assert not found, "\n".join(found)


def test_restore_refuses_a_mount_point_that_still_holds_a_store_and_changes_nothing(
    crashable_server,
):
    machine = crashable_server.machine
    machine.check(f"cyrus-backup create {ARCHIVE}")
    machine.wait_for_tcp(143)
    pid = master_pid(machine)
    refused = machine.run(f"cyrus-backup restore {ARCHIVE} 2>&1")
    assert not refused.ok
    assert "mount points that hold files" in refused.output, refused.output
    assert "nothing was changed" in refused.output, refused.output
    # /var/lib/cyrus holds the databases; /var/spool/sieve, without a script, only
    # directories, which a restore may fill.
    assert "  /var/lib/cyrus\n" in refused.output, refused.output
    assert "/var/spool/sieve" not in refused.output, refused.output
    assert master_pid(machine) == pid
    assert machine.run("ls -d /var/lib/cyrus.* /var/spool/cyrus/mail.* 2>/dev/null").output == ""


def test_restoring_from_something_that_is_not_an_archive_changes_nothing(crashable_server):
    machine = crashable_server.machine
    pid = master_pid(machine)
    refused = machine.run("cyrus-backup restore /etc/hostname 2>&1")
    assert not refused.ok
    assert "is not a tar archive; nothing was changed" in refused.output, refused.output
    assert master_pid(machine) == pid
    assert machine.run("ls -d /var/lib/cyrus.pre-restore-* 2>/dev/null").output == ""


# Archives that would make a restore, which runs as root, write outside the store. Each is
# made by `tar` from /var/tmp/payload, renamed into place with --transform.
HOSTILE_ARCHIVES = {
    "a member outside the store": "tar -cPf {archive} /var/tmp/payload"
    " --transform 's|^/var/tmp/payload|/etc/cron.d/payload|'",
    "a .. in a member's name": "tar -cPf {archive} /var/tmp/payload"
    " --transform 's|^/var/tmp/payload|/var/lib/cyrus/../../../etc/cron.d/payload|'",
    "a symbolic link": "ln -sfn /etc /var/tmp/link && tar -cPf {archive} /var/tmp/link"
    " --transform 's|^/var/tmp/link|/var/lib/cyrus/link|'",
    "a hard link to a file outside the store": "ln -f /var/tmp/payload /var/tmp/payload2"
    " && tar -cPf {archive} /var/tmp/payload /var/tmp/payload2"
    " --transform 'flags=rSH;s|^/var/tmp/payload|/var/lib/cyrus/payload|'"
    " --transform 'flags=RSh;s|^/var/tmp/payload$|/etc/shadow|'",
}


@pytest.mark.parametrize("hostile", HOSTILE_ARCHIVES)
def test_restore_refuses_an_archive_reaching_outside_the_store_before_touching_anything(
    crashable_server, hostile, behaviour
):
    machine = crashable_server.machine
    archive = "/var/tmp/hostile.tar"
    machine.check("echo planted > /var/tmp/payload")
    machine.check(HOSTILE_ARCHIVES[hostile].format(archive=archive))
    pid = master_pid(machine)
    refused = machine.run(f"cyrus-backup restore {archive} 2>&1")
    behaviour(
        f"cyrus-backup restore of an archive with {hostile}",
        "refused" if not refused.ok else "restored",
    )
    assert not refused.ok
    assert "nothing was changed" in refused.output, refused.output
    assert master_pid(machine) == pid, "the service was stopped"
    assert machine.run("ls -d /var/lib/cyrus.pre-restore-* 2>/dev/null").output == ""
    assert not machine.run("test -e /etc/cron.d/payload || test -e /var/lib/cyrus/link").ok


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
