"""A full disk during delivery, on ext4 as on a host (journal, delayed allocation), for the
mail partition and for the database directory: a message Cyrus cannot store is deferred
(4xx, never a bounce), nothing acknowledged is lost, once space is freed the same server
takes the rest without a restart, and Cyrus's own tools find every database whole. With the
conversation databases off (as shipped) a delivery writes only the duplicate-delivery
database in the database directory; when that cannot grow, Cyrus logs it and still stores
and acknowledges the mail, so the database directory defers nothing."""

import pytest

from cyrus_testbed.clients import LmtpReplies, lmtp_deliver_each
from cyrus_testbed.corpus import varied_messages
from cyrus_testbed.disks import SmallDisk
from cyrus_testbed.mailbox import (
    USER,
    assert_acknowledged_messages_are_intact,
    assert_databases_consistent,
    assert_reconstruct_finds_nothing_to_repair,
    stored_messages,
)
from cyrus_testbed.server_config import master_pid

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SEED = 20261125
DELIVERIES = 300


def fill(machine, disk: SmallDisk) -> str:
    """Fill the disk up to what the test leaves free; the filler's path."""
    filler = f"{disk.path}/filler"
    free_kib = int(machine.check(f"df --output=avail -k {disk.path} | tail -n 1"))
    machine.check(f"fallocate -l {(free_kib - disk.left_free_kib) * 1024} {filler}")
    return filler


def replies_by_file(replies: list[LmtpReplies]) -> dict[str, str]:
    return {reply.file: reply.final_reply(USER) for reply in replies}


def test_a_full_disk_defers_delivery_loses_nothing_and_damages_no_database(
    small_disk, server_with_a_small_disk, behaviour, figures
):
    server = server_with_a_small_disk
    machine, password = server.machine, server.users.passwords[USER]
    sent = varied_messages(SEED, DELIVERIES, USER, tag="disk full ")
    pid = master_pid(machine)
    filler = fill(machine, small_disk)

    first = replies_by_file(lmtp_deliver_each(machine, [USER], sent))
    acknowledged = {name for name, reply in first.items() if reply.startswith("250")}
    deferred = sorted(name for name, reply in first.items() if reply.startswith("4"))
    refusals = sorted({reply for reply in first.values() if not reply.startswith("250")})
    # Which write meets the full disk first varies, and with it the text: the codes are
    # the behaviour, the texts go to the figures.
    behaviour(
        f"LMTP reply codes when the {small_disk.what} is full",
        " ".join(sorted({reply[:3] for reply in refusals})) or "none",
    )
    assert acknowledged, f"nothing acknowledged: {refusals}"
    assert "No space left on device" in machine.cyrus_log(), "the disk never filled"
    assert len(acknowledged) + len(deferred) == DELIVERIES, f"a permanent failure: {refusals}"
    assert_acknowledged_messages_are_intact(acknowledged, sent, stored_messages(machine, password))

    machine.check(f"rm {filler}")
    retried = [sent[int(name.removesuffix(".eml"))] for name in deferred]
    second = replies_by_file(lmtp_deliver_each(machine, [USER], retried))
    assert all(reply.startswith("250") for reply in second.values()), second
    assert master_pid(machine) == pid  # the same server, not restarted

    stored = stored_messages(machine, password)
    figures(
        attempted=DELIVERIES,
        acknowledged_while_full=len(acknowledged),
        deferred=len(deferred),
        found_after_retry=len(stored),
        refusals=" | ".join(refusals),
    )
    every_file = {f"{number:06d}.eml" for number in range(DELIVERIES)}
    assert_acknowledged_messages_are_intact(every_file, sent, stored)
    assert len(stored) == DELIVERIES
    assert_reconstruct_finds_nothing_to_repair(machine, password)
    assert_databases_consistent(machine)
