"""Hostile input: a fixed number of seeded, malformed command lines against every protocol the
default install serves. No Cyrus process dies on a signal, master stays the same process, and
the server goes on serving real clients."""

import dataclasses
import poplib

import pytest

from cyrus_testbed.clients import fuzz, imap_login, lmtp_deliver, make_message, tls_context
from cyrus_testbed.server_config import master_pid

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SEED = 20261125
CASES = 500
PROTOCOLS = {"imap": 143, "pop3": 110, "lmtp": 24, "sieve": 4190}
# How master reports a child that died on a signal (master/master.c).
DIED_ON_A_SIGNAL = ("signaled to death", "killed with signal")


def test_hostile_command_lines_kill_no_process_and_the_server_keeps_serving(
    crashable_server, figures
):
    machine, users = crashable_server.machine, crashable_server.users
    machine.wait_for_tcp(4190)
    pid = master_pid(machine)
    for protocol, port in PROTOCOLS.items():
        counted = fuzz(machine, protocol, port, SEED, CASES)
        figures(protocol=protocol, **dataclasses.asdict(counted))
        assert counted.cases == CASES, f"{protocol}: the deadline cut the run short: {counted}"

    log = machine.cyrus_log()
    deaths = [line for line in log.splitlines() if any(s in line for s in DIED_ON_A_SIGNAL)]
    assert not deaths, "\n".join(deaths)
    assert master_pid(machine) == pid

    assert lmtp_deliver(machine, ["alice"], make_message("after the fuzzing")).delivered_to("alice")
    imap = imap_login(machine, "alice", users.passwords["alice"])
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
    pop = poplib.POP3("127.0.0.1", machine.port(110), timeout=30)
    pop.stls(tls_context())
    pop.user("alice")
    pop.pass_(users.passwords["alice"])
    assert pop.stat()[0] >= 1
    pop.quit()
    for port, greeting in ((4190, '"IMPLEMENTATION"'), (24, "220 ")):
        said = machine.run(f"timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; cat <&3'")
        assert greeting in said.output, (port, said.output)
