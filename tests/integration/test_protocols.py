"""IMAP over implicit TLS, POP3 over STLS, and the three IDLE behaviours, as clients see them."""

import base64
import poplib
import re
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import imaplib2
import pytest

from cyrus_testbed.clients import (
    examine,
    imap_login,
    imaps_connect,
    lmtp_deliver,
    make_message,
    tls_context,
)
from cyrus_testbed.server_config import WITHOUT_IDLED, reconfigured, restart

pytestmark = pytest.mark.integration

IDLE_WAIT_S = 10


def test_imap_over_implicit_tls_on_993_logs_in_with_the_snakeoil_certificate(server):
    imap = imaps_connect(server.machine)
    assert imap.login("alice", server.users.passwords["alice"])[0] == "OK"
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()


@contextmanager
def cyrus_out_of_ssl_cert(machine) -> Iterator[None]:
    """cyrus out of group ssl-cert, and back in it afterwards, whatever the test did."""
    machine.check("gpasswd -d cyrus ssl-cert")
    try:
        yield
    finally:
        machine.check("adduser --quiet cyrus ssl-cert")


def test_imap_over_tls_works_with_a_key_of_cyrus_own_once_cyrus_leaves_ssl_cert(server, behaviour):
    """README.Debian, Security: group ssl-cert reads every service's private key; Cyrus
    needs it only for the snakeoil key of the shipped imapd.conf. Its own key lives
    outside /etc/ssl/private, which only ssl-cert may enter."""
    machine = server.machine
    key, certificate = "/etc/ssl/cyrus.key", "/etc/ssl/certs/cyrus.pem"
    machine.check(
        f"openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=cyrus -keyout {key}"
        f" -out {certificate} 2>&1 && chown root:mail {key} && chmod 0640 {key}"
    )
    options = {"tls_server_key": key, "tls_server_cert": certificate}
    with reconfigured(machine, options=options), cyrus_out_of_ssl_cert(machine):
        restart(machine)
        imap = imaps_connect(machine)
        assert isinstance(imap.sock, ssl.SSLSocket)
        served = imap.sock.getpeercert(binary_form=True)
        assert served is not None
        assert imap.login("alice", server.users.passwords["alice"])[0] == "OK"
        imap.logout()
        master = machine.check("cat /proc/$(cat /run/cyrus/master.pid)/status")
    ours = machine.check(f"openssl x509 -in {certificate} -outform DER | base64 -w0")
    assert base64.b64encode(served).decode() == ours.strip()
    ssl_cert_gid = machine.check("getent group ssl-cert | cut -d: -f3").strip()
    groups = re.search(r"^Groups:\s*(.*)$", master, re.M)
    assert groups and ssl_cert_gid not in groups.group(1).split(), master
    behaviour("TLS with a key of Cyrus's own, cyrus out of ssl-cert", "works")


def test_pop3_over_stls_lists_retrieves_and_deletes_and_imap_sees_the_deletion(server):
    machine, password = server.machine, server.users.passwords["bob"]
    messages = [make_message(f"for pop3 {n}") for n in range(2)]
    for message in messages:
        assert lmtp_deliver(machine, ["bob"], message).delivered_to("bob")
    before = imap_login(machine, "bob", password)
    count_before = examine(before)
    before.logout()

    pop = poplib.POP3("127.0.0.1", machine.port(110), timeout=30)
    pop.stls(tls_context())
    pop.user("bob")
    pop.pass_(password)
    count, _ = pop.stat()
    assert count == count_before
    assert len(pop.list()[1]) == count and len(pop.uidl()[1]) == count
    retrieved = b"\n".join(pop.retr(count)[1]) + b"\n"
    assert retrieved.endswith(messages[-1].replace(b"\r\n", b"\n"))
    pop.dele(count)
    pop.quit()

    after = imap_login(machine, "bob", password)
    assert examine(after) == count_before - 1
    _, found = after.search(None, "SUBJECT", '"for pop3 1"')
    assert found[0] == b""
    after.logout()


def idle_notification_latency(server, subject: str) -> float:
    """Seconds from the start of an LMTP delivery to the EXISTS seen by a client in IDLE."""
    machine = server.machine
    client = imaplib2.IMAP4_SSL("127.0.0.1", machine.port(993), timeout=30)
    try:
        client.login("alice", server.users.passwords["alice"])
        client.select("INBOX")
        notified = threading.Event()
        client.idle(timeout=IDLE_WAIT_S, callback=lambda _: notified.set())
        # imaplib2 gives no signal once the server has said "+ idling";
        # a short, bounded pause lets the IDLE reach the server first.
        time.sleep(0.5)
        started = time.monotonic()
        lmtp_deliver(machine, ["alice"], make_message(subject))
        assert notified.wait(IDLE_WAIT_S), f"no IDLE response within {IDLE_WAIT_S} s"
        return time.monotonic() - started
    finally:
        client.logout()


def test_idle_with_idled_reports_a_delivery_within_one_second(server, behaviour):
    latency = idle_notification_latency(server, "wakes the idle client")
    print(f"IDLE notification with idled: {latency * 1000:.0f} ms after delivery start")
    behaviour("IDLE with idled: EXISTS within 1 s of a delivery", str(latency < 1.0).lower())
    assert latency < 1.0


def test_idle_without_idled_polls_every_imapidlepoll_seconds(server, behaviour):
    with reconfigured(server.machine, options={"imapidlepoll": "1"}, local_fragment=WITHOUT_IDLED):
        assert server.machine.host.process.filter(comm="idled") == []
        latency = idle_notification_latency(server, "found by polling")
    print(f"IDLE notification by polling every 1 s: {latency * 1000:.0f} ms after delivery start")
    behaviour("IDLE by polling (imapidlepoll: 1): EXISTS within 2.5 s", str(latency < 2.5).lower())
    assert latency < 2.5


def test_imapidlepoll_zero_turns_idle_off(server, behaviour):
    with reconfigured(server.machine, options={"imapidlepoll": "0"}):
        imap = imap_login(server.machine, "alice", server.users.passwords["alice"])
        _, capabilities = imap.capability()  # after login, where Cyrus lists IDLE
        offered = b"IDLE" in capabilities[0].split()
        imap.logout()
    behaviour("IDLE offered with imapidlepoll: 0", str(offered).lower())
    assert not offered
