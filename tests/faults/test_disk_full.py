"""A full mail partition during delivery: the sender is told to try again later (4xx, never
a bounce), nothing acknowledged is lost, and once space is freed the same server takes the
rest, without a restart."""

import pytest

from cyrus_deb.clients import lmtp_deliver_each
from cyrus_deb.server_config import master_pid

from ..corpus import varied_messages
from .mailbox import (
    USER,
    assert_acknowledged_messages_are_intact,
    assert_reconstruct_finds_nothing_to_repair,
    stored_messages,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SEED = 20261125
DELIVERIES = 300
SPOOL = "/var/spool/cyrus/mail"
# Room for a few dozen of the generated messages; the rest must be refused.
LEFT_FREE_KIB = 600


def fill_spool(machine) -> None:
    free_kib = int(machine.check(f"df --output=avail -k {SPOOL} | tail -n 1"))
    machine.check(f"fallocate -l {(free_kib - LEFT_FREE_KIB) * 1024} {SPOOL}/filler")


def replies_by_file(replies: list[dict]) -> dict[str, str]:
    return {reply["file"]: reply["data"].get(USER, reply["rcpt"][USER]) for reply in replies}


def test_a_full_mail_partition_defers_delivery_and_loses_nothing(
    server_with_a_small_spool, behaviour, figures
):
    server = server_with_a_small_spool
    machine, password = server.machine, server.users.passwords[USER]
    sent = varied_messages(SEED, DELIVERIES, USER, tag="disk full ")
    pid = master_pid(machine)
    fill_spool(machine)

    first = replies_by_file(lmtp_deliver_each(machine, [USER], sent))
    acknowledged = {name for name, reply in first.items() if reply.startswith("250")}
    deferred = sorted(name for name, reply in first.items() if reply.startswith("4"))
    refusals = sorted({reply for reply in first.values() if not reply.startswith("250")})
    behaviour("LMTP reply when the mail partition is full", refusals[0] if refusals else "none")
    assert acknowledged and deferred, f"expected some 250s, then 4xx replies: {refusals}"
    assert len(acknowledged) + len(deferred) == DELIVERIES, f"a permanent failure: {refusals}"
    assert_acknowledged_messages_are_intact(acknowledged, sent, stored_messages(machine, password))

    machine.check(f"rm {SPOOL}/filler")
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
    )
    every_file = {f"{number:06d}.eml" for number in range(DELIVERIES)}
    assert_acknowledged_messages_are_intact(every_file, sent, stored)
    assert len(stored) == DELIVERIES
    assert_reconstruct_finds_nothing_to_repair(machine, password)
