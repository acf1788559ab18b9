"""A mail partition on a disk that did not get mounted leaves an empty mount point. Cyrus
would start on it and answer that the mailboxes there do not exist; the packaged start step
refuses instead and names the partition. Once the disk is mounted, all is as it was."""

import pytest

from cyrus_testbed.clients import lmtp_deliver_each
from cyrus_testbed.corpus import varied_messages
from cyrus_testbed.fingerprint import fingerprint
from cyrus_testbed.store import CLIENT_PACKAGES

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SEED = 20261126
SPOOL = "/var/spool/cyrus/mail"
# Where the partition's file system waits while it is "not mounted".
UNMOUNTED = "/var/spool/cyrus/mail.unmounted"
REFUSAL = f"partition default ({SPOOL}) holds no files"


def test_a_mail_partition_left_unmounted_stops_the_start_and_loses_nothing(
    crashable_server, behaviour, figures
):
    machine, passwords = crashable_server.machine, crashable_server.users.passwords
    machine.check(f"apt-get install -y -q {' '.join(CLIENT_PACKAGES)} 2>&1")
    for user in passwords:
        replies = lmtp_deliver_each(machine, [user], varied_messages(SEED, 10, user, tag="mount "))
        assert all(reply.delivered_to(user) for reply in replies), replies
    before = fingerprint(machine, passwords)

    assert machine.service("stop").ok
    machine.check(f"mv {SPOOL} {UNMOUNTED} && install -d -o cyrus -g mail -m 0750 {SPOOL}")
    started = machine.service("start")
    log = machine.cyrus_log()
    outcome = "refused" if not started.ok else "started"
    behaviour("start with the mail partition not mounted", outcome)
    assert not started.ok, "Cyrus started on an empty mail partition"
    assert REFUSAL in log and "is its file system mounted?" in log, log[-3000:]
    explained = machine.explain_refused_start(started)
    assert REFUSAL in explained, explained
    assert not machine.listens(143)
    # Nothing went to the disk under the mount point: at most the empty directories
    # cyrus-makedirs creates there.
    assert machine.check(f"find {SPOOL} -type f").strip() == ""

    machine.check(f"rm -r {SPOOL} && mv {UNMOUNTED} {SPOOL}")  # the disk is mounted
    restarted = machine.start_again()
    assert restarted.ok, restarted.output
    machine.wait_for_tcp(143)
    after = fingerprint(machine, passwords)
    found = before.differences(after)
    figures(messages_compared=after.message_count, differences=found)
    assert not found, "\n".join(found)
