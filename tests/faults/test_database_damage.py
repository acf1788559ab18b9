"""A damaged mailbox list. Cyrus's own recovery keeps the records it can read and drops the
rest, so a truncated or overwritten mailboxes.db would start with mailboxes missing. The
packaged start step refuses instead, and says how to rebuild the list from the daily dump;
following those words to the end gives back the store as it was."""

import pytest

from cyrus_testbed.fingerprint import fingerprint
from cyrus_testbed.mailbox import fill_with_mail_and_folders
from cyrus_testbed.store import CLIENT_PACKAGES

pytestmark = [pytest.mark.faults, pytest.mark.slow]

MAILBOXES_DB = "/var/lib/cyrus/mailboxes.db"
DUMP = "/var/backups/cyrus-mboxlist.txt"
DAMAGE = {
    "truncated": f"truncate -s $(( $(stat -c %s {MAILBOXES_DB}) / 2 )) {MAILBOXES_DB}",
    "overwritten": f"dd if=/dev/urandom of={MAILBOXES_DB} bs=1 seek=2048 count=4096"
    " conv=notrunc 2>&1",
}
# README.Debian, Backups; and the words the refused start shows.
RESTORE = f"mv {MAILBOXES_DB} {MAILBOXES_DB}.damaged && cyrus ctl_mboxlist -u < {DUMP}"


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_mailbox_list_stops_the_start_and_the_documented_restore_brings_all_back(
    crashable_server, damage, behaviour, figures
):
    machine, passwords = crashable_server.machine, crashable_server.users.passwords
    machine.check(f"apt-get install -y -q {' '.join(CLIENT_PACKAGES)} 2>&1")
    fill_with_mail_and_folders(machine, passwords)
    machine.init.run_daily_job(machine)  # the dump the restore below reads
    before = fingerprint(machine, passwords)

    assert machine.service("stop").ok
    machine.check(DAMAGE[damage])
    started = machine.service("start")
    log = machine.cyrus_log()
    behaviour(f"start on a mailboxes.db {damage}", "refused" if not started.ok else "started")
    assert not started.ok, "Cyrus started on a damaged mailbox list"
    assert RESTORE in log, log[-3000:]
    explained = machine.explain_refused_start(started)
    assert RESTORE in explained, explained
    assert not machine.listens(143)

    machine.check(RESTORE)
    restarted = machine.start_again()
    assert restarted.ok, restarted.output
    machine.wait_for_tcp(143)
    after = fingerprint(machine, passwords)
    found = before.differences(after)
    figures(
        damage=damage,
        mailboxes=after.mailbox_count,
        messages_compared=after.message_count,
        differences=found,
    )
    assert not found, "\n".join(found)
