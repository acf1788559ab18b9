"""Crashes in the middle of delivery. A stream of LMTP deliveries runs into a power cut (every
process of the machine SIGKILLed at once) or into `kill -9` of master alone, at a point drawn
from a fixed seed. Afterwards every message lmtpd acknowledged with 250 is in the mailbox,
byte for byte, and reconstruct finds nothing to repair."""

import random

import pytest

from cyrus_deb.clients import lmtp_deliver_each
from cyrus_deb.server_config import master_pid

from ..corpus import varied_messages
from .mailbox import (
    USER,
    assert_acknowledged_messages_are_intact,
    assert_reconstruct_finds_nothing_to_repair,
    deliver_until,
    stored_messages,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SEED = 20261125
DELIVERIES = 1000


def crash_point(target) -> int:
    """Where the crash falls, drawn from the seed: the same point on every run of a target."""
    return random.Random(f"{SEED}-{target}").randint(50, DELIVERIES - 50)


def test_a_power_cut_during_delivery_loses_no_acknowledged_message(
    crashable_server, target, figures
):
    machine, password = crashable_server.machine, crashable_server.users.passwords[USER]
    sent = varied_messages(SEED, DELIVERIES, USER, tag="power cut ")
    acknowledged = deliver_until(machine, sent, crash_point(target), machine.power_cut)
    machine.power_on()
    machine.wait_for_tcp(143)  # started at boot, no manual step

    stored = stored_messages(machine, password)
    figures(attempted=DELIVERIES, acknowledged=len(acknowledged), found=len(stored))
    assert_acknowledged_messages_are_intact(acknowledged, sent, stored)
    assert_reconstruct_finds_nothing_to_repair(machine)

    # The MTA sends again what it saw no 250 for; one stored before the cut is dropped
    # as a duplicate, so every message ends up there exactly once (README.Debian).
    unacknowledged = [
        message for number, message in enumerate(sent) if f"{number:06d}.eml" not in acknowledged
    ]
    replies = lmtp_deliver_each(machine, [USER], unacknowledged)
    assert all(reply["data"][USER].startswith("250") for reply in replies), replies
    assert len(stored_messages(machine, password)) == DELIVERIES


def test_kill_9_of_master_during_delivery_loses_no_acknowledged_message(
    crashable_server, target, behaviour, figures
):
    machine, password = crashable_server.machine, crashable_server.users.passwords[USER]
    sent = varied_messages(SEED, DELIVERIES, USER, tag="master killed ")
    killed = master_pid(machine)

    def kill_master() -> None:
        machine.check(f"kill -9 {killed}")

    acknowledged = deliver_until(machine, sent, crash_point(target), kill_master)
    if machine.init == "systemd":
        # Restart=on-abnormal: systemd starts master again by itself.
        machine.wait_until(
            f"pid=$(cat /run/cyrus/master.pid) && [ $pid != {killed} ] && kill -0 $pid",
            30,
            "systemd did not restart master",
        )
        recovery = "restarted by systemd"
    else:
        # sysvinit watches nothing: the administrator starts it (README.Debian).
        started = machine.service("start")
        assert started.ok, started.output
        recovery = "service cyrus-imapd start"
    behaviour("after kill -9 of master", recovery)
    machine.wait_for_tcp(143)

    stored = stored_messages(machine, password)
    figures(attempted=DELIVERIES, acknowledged=len(acknowledged), found=len(stored))
    assert_acknowledged_messages_are_intact(acknowledged, sent, stored)
    assert_reconstruct_finds_nothing_to_repair(machine)
