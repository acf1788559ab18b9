"""Crashes in the middle of delivery. A stream of LMTP deliveries runs into a real power cut
(the store's own ext4 file system stopped without flushing its journal, every process killed),
into every process of the machine SIGKILLed at once (a crash the host's page cache survives),
or into `kill -9` of master alone, at points drawn from a fixed seed. Afterwards every message
lmtpd acknowledged with 250 is in the mailbox, byte for byte, and reconstruct finds nothing to
repair."""

import random

import pytest

from cyrus_testbed.clients import (
    TEST_FILES,
    imap_login,
    lmtp_deliver_each,
    make_message,
    sieve_connect,
)
from cyrus_testbed.corpus import varied_messages
from cyrus_testbed.mailbox import (
    USER,
    assert_acknowledged_messages_are_intact,
    assert_reconstruct_finds_nothing_to_repair,
    deliver_until,
    message_id,
    stored_messages,
)
from cyrus_testbed.server_config import master_pid

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SEED = 20261125
DELIVERIES = 1000
# Real power cuts per stream of DELIVERIES, one in each fifth.
POWER_CUTS = 5


def resend_unacknowledged(
    machine, password: str, sent: list[bytes], acknowledged: set[str], twice_allowed: frozenset[str]
) -> frozenset[str]:
    """What the MTA does: send again every message whose 250 it did not see. One stored
    before the crash whose 250 never reached the MTA may then be there twice (README.Debian);
    the Message-IDs that may be, `twice_allowed` among them. A file a cut delivery left is
    overwritten, so reconstruct has nothing left to say."""
    unacknowledged = {
        message_id(message): message
        for number, message in enumerate(sent)
        if f"{number:06d}.eml" not in acknowledged
    }
    stored = frozenset(stored_messages(machine, password, twice_allowed))
    replies = lmtp_deliver_each(machine, [USER], list(unacknowledged.values()))
    assert all(reply.delivered_to(USER) for reply in replies), replies
    return twice_allowed | (stored & set(unacknowledged))


def send_again_what_was_not_acknowledged(
    machine, password: str, sent: list[bytes], acknowledged: set[str]
) -> None:
    """Every message is there once the MTA has sent again what it was not told was stored."""
    twice_allowed = resend_unacknowledged(machine, password, sent, acknowledged, frozenset())
    assert len(stored_messages(machine, password, twice_allowed)) == DELIVERIES
    assert_reconstruct_finds_nothing_to_repair(machine, password)


def crash_point(target) -> int:
    """Where the crash falls, drawn from the seed: the same point on every run of a target."""
    return random.Random(f"{SEED}-{target}").randint(50, DELIVERIES - 50)


def test_every_process_killed_at_once_during_delivery_loses_no_acknowledged_message(
    crashable_server, target, figures
):
    """A crash of every process (the host's page cache keeps what they wrote)."""
    machine, password = crashable_server.machine, crashable_server.users.passwords[USER]
    sent = varied_messages(SEED, DELIVERIES, USER, tag="every process killed ")
    acknowledged = deliver_until(machine, sent, crash_point(target), machine.power_cut)
    machine.power_on()
    machine.wait_for_tcp(143)  # started at boot, no manual step

    stored = stored_messages(machine, password)
    figures(attempted=DELIVERIES, acknowledged=len(acknowledged), found=len(stored))
    assert_acknowledged_messages_are_intact(acknowledged, sent, stored)
    assert_reconstruct_finds_nothing_to_repair(machine, password, cut_delivery_allowed=True)
    send_again_what_was_not_acknowledged(machine, password, sent, acknowledged)


@pytest.mark.quick
def test_kill_9_of_master_during_delivery_loses_no_acknowledged_message(
    crashable_server, target, behaviour, figures
):
    machine, password = crashable_server.machine, crashable_server.users.passwords[USER]
    sent = varied_messages(SEED, DELIVERIES, USER, tag="master killed ")
    killed = master_pid(machine)
    # An administrator's long-running Cyrus tool, left behind by a shell that exited: its
    # parent is init too, but it is none of master's children and must survive the start.
    tool = machine.check(
        "setsid cyrus cyr_withlock_run -u carol /bin/sleep 600"
        " < /dev/null > /dev/null 2>&1 & echo $!"
    ).strip()
    assert machine.host.process.get(pid=int(tool)).comm.startswith("cyr_withlock_ru")

    def kill_master() -> None:
        machine.check(f"kill -9 {killed}")

    acknowledged = deliver_until(machine, sent, crash_point(target), kill_master)
    started = machine.start_after_master_dies(killed)
    assert started.ok, started.output
    behaviour("after kill -9 of master", machine.init.recovery_after_master_dies)
    machine.wait_for_tcp(143)
    tool_survived = machine.run(f"kill -0 {tool}").ok
    behaviour(
        "an administrator's Cyrus tool, after master was killed and started again",
        "running" if tool_survived else "killed",
    )
    assert tool_survived

    stored = stored_messages(machine, password)
    figures(attempted=DELIVERIES, acknowledged=len(acknowledged), found=len(stored))
    assert_acknowledged_messages_are_intact(acknowledged, sent, stored)
    assert_reconstruct_finds_nothing_to_repair(machine, password, cut_delivery_allowed=True)
    send_again_what_was_not_acknowledged(machine, password, sent, acknowledged)


def cut_points(target) -> list[int]:
    """Where each power cut falls, one in each stretch of the stream, drawn from the seed."""
    stretch = DELIVERIES // POWER_CUTS
    draw = random.Random(f"{SEED}-{target}-power-cuts")
    return [draw.randint(20, stretch - 20) for _ in range(POWER_CUTS)]


def test_power_cuts_on_a_real_disk_lose_no_acknowledged_message(
    server_on_its_own_disk, target, figures
):
    """Real power cuts: the store's file system stops without flushing its journal, so
    whatever Cyrus acknowledged without syncing it first would be lost."""
    server = server_on_its_own_disk
    machine, password = server.machine, server.users.passwords[USER]
    sent = varied_messages(SEED, DELIVERIES, USER, tag="power cut ")
    stretch = DELIVERIES // POWER_CUTS
    twice_allowed: frozenset[str] = frozenset()
    for number, point in enumerate(cut_points(target)):
        batch = sent[number * stretch : (number + 1) * stretch]
        acknowledged = deliver_until(machine, batch, point, machine.power_cut)
        verdict = machine.power_on()
        assert verdict is not None
        canary_lost = not machine.state_disk.canary_survived()
        machine.wait_for_tcp(143)  # started at boot, no manual step
        stored = stored_messages(machine, password, twice_allowed)
        found = [name for name in acknowledged if message_id(batch[int(name[:6])]) in stored]
        figures(
            cut=number + 1,
            attempted=len(batch),
            acknowledged=len(acknowledged),
            found=len(found),
            lost=len(acknowledged) - len(found),
            fsck_exit=verdict.exit_code,
            fsck=" / ".join(verdict.output.splitlines()),
            unsynced_write_lost=canary_lost,
        )
        assert canary_lost, "the rig's unsynced write survived the cut: it cuts nothing"
        assert verdict.acceptable, verdict.output
        assert_acknowledged_messages_are_intact(acknowledged, batch, stored)
        assert_reconstruct_finds_nothing_to_repair(machine, password, cut_delivery_allowed=True)
        twice_allowed = resend_unacknowledged(machine, password, batch, acknowledged, twice_allowed)
    assert len(stored_messages(machine, password, twice_allowed)) == DELIVERIES
    assert_reconstruct_finds_nothing_to_repair(machine, password)


SIEVE_SCRIPT = (
    'require ["fileinto"];\nif header :contains "Subject" "[list]" { fileinto "Lists"; }\n'
)


def test_imap_and_sieve_changes_acknowledged_before_a_power_cut_survive_it(
    server_on_its_own_disk, behaviour, figures
):
    server = server_on_its_own_disk
    machine, password = server.machine, server.users.passwords[USER]
    machine.install(["sieve-connect"])
    messages = [make_message(f"kept {number}") for number in range(3)]
    replies = lmtp_deliver_each(machine, [USER], messages)
    assert all(reply.delivered_to(USER) for reply in replies), replies
    imap = imap_login(machine, USER, password)
    imap.select("INBOX")
    changes = [
        imap.store("1", "+FLAGS", r"(\Flagged)"),
        imap.store("2", "+FLAGS", r"(\Seen)"),
        imap.create("Lists"),
        imap.setacl("Lists", "bob", "lrs"),
    ]
    assert all(status == "OK" for status, _ in changes), changes
    imap.logout()
    machine.write_file(f"{TEST_FILES}/lists.sieve", SIEVE_SCRIPT)
    sieve_connect(
        machine,
        USER,
        password,
        f"--upload --localsieve {TEST_FILES}/lists.sieve --remotesieve lists",
    )
    sieve_connect(machine, USER, password, "--activate --remotesieve lists")

    machine.power_cut()
    verdict = machine.power_on()
    machine.wait_for_tcp(143)

    imap = imap_login(machine, USER, password)
    imap.select("INBOX", readonly=True)
    _, fetched = imap.fetch("1:3", "(FLAGS)")
    flags = [line for line in fetched if isinstance(line, bytes)]
    _, acl = imap.getacl("Lists")
    assert isinstance(acl[0], bytes), acl
    imap.logout()
    listing = sieve_connect(machine, USER, password, "--list")
    machine.check(f"rm -f {TEST_FILES}/kept.sieve")
    sieve_connect(
        machine,
        USER,
        password,
        f"--download --remotesieve lists --localsieve {TEST_FILES}/kept.sieve",
    )
    script = machine.read_file(f"{TEST_FILES}/kept.sieve")
    assert verdict is not None
    unsynced_write_lost = not machine.state_disk.canary_survived()
    figures(fsck_exit=verdict.exit_code, unsynced_write_lost=unsynced_write_lost)
    kept = {
        "flags": [b"\\Flagged" in flags[0], b"\\Seen" in flags[1], b"\\Seen" not in flags[2]],
        "folder and ACL": b"bob lrs" in acl[0],
        "active script": '"lists" ACTIVE' in listing and script == SIEVE_SCRIPT,
    }
    behaviour(
        "IMAP and ManageSieve changes acknowledged before a real power cut",
        " ".join(f"{what.replace(' ', '_')}={value}" for what, value in kept.items()),
    )
    assert unsynced_write_lost, "the rig's unsynced write survived the cut: it cuts nothing"
    assert kept == {"flags": [True, True, True], "folder and ACL": True, "active script": True}
