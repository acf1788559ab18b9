"""The service's life on both init systems: stop, start, restart, reload, and who runs it."""

import re

import pytest

from cyrus_testbed.clients import examine, fetched_message, imap_login, lmtp_deliver, make_message
from cyrus_testbed.server_config import LOCAL_FRAGMENT, master_pid, restart

pytestmark = pytest.mark.integration

CAP_NET_BIND_SERVICE = 1 << 10
EVERY_LISTENER = "ss -Hltnx | grep -qE ':143 |:993 |:110 |:995 |:24 |:4190 |/run/cyrus/socket/lmtp'"


def test_master_and_every_child_run_as_cyrus(server, behaviour):
    machine = server.machine
    machine.wait_for_tcp(143)
    pairs = [
        (process.user, process.comm)
        for name in ("master", "imapd", "pop3d", "lmtpd", "idled", "timsieved")
        for process in machine.host.process.filter(comm=name)
    ]
    assert ("cyrus", "master") in pairs
    assert ("cyrus", "idled") in pairs
    users = sorted({user for user, _ in pairs})
    behaviour("user running master and its children", " ".join(users))
    assert users == ["cyrus"], pairs


def capabilities(machine, pid: str) -> dict[str, int]:
    """The capability sets of a process, from /proc/PID/status."""
    status = machine.read_file(f"/proc/{pid}/status")
    return {key: int(value, 16) for key, value in re.findall(r"^(Cap\w+):\s+(\w+)$", status, re.M)}


def test_an_unprivileged_process_cannot_bind_a_port_below_1024_as_on_a_host(server):
    """The machine's own negative control: Docker lets anyone bind low ports; a host does
    not, and a master that lost its privilege must fail here as it would there."""
    bind = "python3 -c 'import socket; socket.socket().bind((\"127.0.0.1\", 999))' 2>&1"
    refused = server.machine.run(f"setpriv --reuid=nobody --regid=nogroup --clear-groups {bind}")
    assert not refused.ok and "Permission denied" in refused.output, refused.output


def test_master_keeps_only_the_right_to_bind_and_its_children_hold_no_capability(server, behaviour):
    machine = server.machine
    machine.wait_for_tcp(143)
    master = master_pid(machine)
    held = capabilities(machine, master)
    behaviour(
        "master's capabilities (permitted, effective)",
        f"{held['CapPrm']:#x} {held['CapEff']:#x}",
    )
    assert held["CapPrm"] == CAP_NET_BIND_SERVICE and held["CapEff"] == 0, held
    assert held["CapInh"] == held["CapAmb"] == 0, held
    children = [str(child.pid) for child in machine.host.process.filter(ppid=int(master))]
    assert len(children) >= 3, children  # idled, the prefork imapd, ...
    for child in children:
        sets = capabilities(machine, child)
        assert sets["CapPrm"] == sets["CapEff"] == sets["CapInh"] == sets["CapAmb"] == 0, sets


def test_cyrus_logs_under_the_names_debian_packages_used(server, behaviour):
    machine = server.machine
    # Each of them logs a line: master on a reload, imapd on a login, lmtpd on a delivery
    # (recovery did at the start).
    assert machine.service("reload").ok
    imap_login(machine, "alice", server.users.passwords["alice"]).logout()
    delivered = lmtp_deliver(machine, ["bob"], make_message("logged as cyrus/lmtp"))
    assert delivered.delivered_to("bob"), delivered
    machine.wait_until_logged("cyrus/master", 1)
    log = machine.cyrus_log()
    # A service logs under its cyrus.conf name (lmtpunix), as under Debian's packages.
    tags = sorted(set(re.findall(r" (cyrus/(?:master|imap|lmtpunix|ctl_cyrusdb))\[\d+\]:", log)))
    behaviour("syslog tags of master, imapd, lmtpd and recovery", " ".join(tags))
    expected = ["cyrus/ctl_cyrusdb", "cyrus/imap", "cyrus/lmtpunix", "cyrus/master"]
    assert tags == expected, log[-3000:]


@pytest.mark.quick
def test_stop_closes_every_port_and_socket_and_start_brings_them_back(server, behaviour):
    machine = server.machine
    assert machine.service("stop").ok
    try:
        machine.wait_until(f"! {{ {EVERY_LISTENER}; }}", 30, "a port or the socket is still open")
        stopped = machine.service("status")
        behaviour("status exit code when stopped", str(stopped.exit_code))
        assert stopped.exit_code == 3, stopped.output  # LSB: "program is not running"
        reload = machine.service("reload")
        behaviour("reload while stopped: exit code", str(reload.exit_code))
        assert not reload.ok, reload.output
        assert not machine.run(EVERY_LISTENER).ok
    finally:
        assert machine.service("start").ok
    for port in (143, 993, 110, 995, 24, 4190):
        machine.wait_for_tcp(port)
    machine.wait_for_unix_socket("/run/cyrus/socket/lmtp")
    running = machine.service("status")
    behaviour("status exit code when running", str(running.exit_code))
    assert running.ok, running.output


def test_restart_keeps_delivered_mail_and_serves_again(server, behaviour):
    machine, password = server.machine, server.users.passwords["bob"]
    message = make_message("kept across a restart")
    assert lmtp_deliver(machine, ["bob"], message).delivered_to("bob")
    pid = master_pid(machine)
    assert machine.service("restart").ok
    machine.wait_for_tcp(143)
    assert master_pid(machine) != pid

    imap = imap_login(machine, "bob", password)
    examine(imap)
    _, found = imap.search(None, "SUBJECT", '"kept across a restart"')
    stored = fetched_message(imap, found[0].split()[-1])
    imap.logout()
    kept = stored.endswith(message.replace(b"\r\n", b"\n"))
    behaviour(
        "a message delivered before a restart, read after it", "intact" if kept else "changed"
    )
    assert kept


def test_reload_starts_an_added_service_and_stops_a_removed_one_keeping_master(server, behaviour):
    machine = server.machine
    pid = master_pid(machine)
    machine.write_file(
        LOCAL_FRAGMENT,
        'SERVICES {\n  pop3 disabled\n  imaplocal cmd="imapd" listen="127.0.0.1:1143"\n}\n',
    )
    try:
        assert machine.service("reload").ok
        machine.wait_for_tcp(1143)
        machine.wait_for_tcp_closed(110)
        assert machine.listens(995) and machine.listens(143)
    finally:
        machine.check(f"rm -f {LOCAL_FRAGMENT}")
        reloaded = machine.service("reload")
    assert reloaded.ok, reloaded.output
    machine.wait_for_tcp(110)
    machine.wait_for_tcp_closed(1143)
    kept = master_pid(machine) == pid
    behaviour("reload adds and removes services, same master", "yes" if kept else "no")
    assert kept


def test_a_service_moved_to_another_listen_keeps_listening_through_later_reloads(server, behaviour):
    """Unpatched, master's second reload after a listen= change bound the port again while
    the moved service still held it, then dropped the service (our DEP-3 patch
    master-reload-keeps-a-moved-service). Package installations reload too."""
    machine = server.machine
    machine.write_file(
        LOCAL_FRAGMENT,
        'SERVICES {\n  imap cmd="imapd" listen="imap" prefork=1\n'
        '  sieve cmd="timsieved" listen="localhost:4190" prefork=0\n}\n',
    )
    try:
        for _ in range(3):
            reconfigured = machine.cyrus_log().count("Services reconfigured")
            assert machine.service("reload").ok
            machine.wait_until_logged("Services reconfigured", reconfigured + 1)
        listening = [port for port in (143, 4190) if machine.listens(port)]
    finally:
        machine.check(f"rm -f {LOCAL_FRAGMENT}")
        restart(machine)
    behaviour(
        "ports of services moved to another listen=, after three reloads",
        " ".join(map(str, listening)),
    )
    assert listening == [143, 4190], machine.cyrus_log()[-3000:]
