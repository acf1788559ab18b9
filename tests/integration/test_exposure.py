"""What the default installation exposes: listening ports, and who can read mail and secrets."""

import pytest

pytestmark = pytest.mark.integration

# cyrus-imapd, cyrus-pop3d and cyrus-common's defaults (README.Debian).
EVERY_ADDRESS = {"143", "993", "110", "995"}
LOOPBACK_ONLY = {"24", "4190"}  # LMTP over TCP, ManageSieve


def test_only_the_documented_ports_listen_and_lmtp_and_sieve_only_on_loopback(server, behaviour):
    machine = server.machine
    machine.wait_for_tcp(4190)
    listeners = {tuple(listener.rsplit(":", 1)) for listener in machine.tcp_listeners()}
    expected = {(address, port) for port in EVERY_ADDRESS for address in ("0.0.0.0", "[::]")}
    expected |= {("127.0.0.1", port) for port in LOOPBACK_ONLY}
    behaviour(
        "TCP listeners of a default install",
        " ".join(sorted(f"{address}:{port}" for address, port in listeners)),
    )
    assert listeners == expected


@pytest.mark.parametrize("tree", ["/var/lib/cyrus", "/var/spool/cyrus/mail", "/var/spool/sieve"])
def test_nothing_that_holds_mail_or_state_is_world_writable_or_reachable(server, tree):
    machine = server.machine
    mode = machine.host.file(tree).mode
    assert mode & 0o007 == 0, f"{tree} is {mode:o}: others can enter it"
    writable = machine.check(f"find {tree} \\( -type f -o -type d \\) -perm /o+w")
    assert writable == "", writable


SECRETS = {
    "/etc/sasldb2": ("root", "sasl", 0o660),
    "/etc/imapd.conf": ("root", "mail", 0o640),
    "/etc/ssl/private/ssl-cert-snakeoil.key": ("root", "ssl-cert", 0o640),
}


@pytest.mark.parametrize("path", SECRETS)
def test_secrets_are_not_world_readable(server, path):
    secret = server.machine.host.file(path)
    assert (secret.user, secret.group, secret.mode) == SECRETS[path]
