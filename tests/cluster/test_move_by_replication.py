"""Upstream's way to upgrade a large store, as README.Debian ("Moving from Debian's own
packages by replication") tells it: Debian 13's own cyrus-imapd 3.10 replicates to a new
server with our 3.12, which takes over; the store users see is the same after the switch."""

from collections.abc import Iterator

import pytest

from cyrus_testbed.boot import boot
from cyrus_testbed.clients import (
    SERVERNAME,
    imap_login,
    lmtp_deliver,
    lmtp_deliver_each,
    make_message,
    provision_users,
)
from cyrus_testbed.fingerprint import fingerprint
from cyrus_testbed.machine import private_network
from cyrus_testbed.readme_debian import block_after, commands_after, imapd_conf_lines
from cyrus_testbed.replication import (
    REPLICA,
    SASLDB,
    ReplicatedPair,
    converged,
    copy_keeping_owner_and_mode,
    primary_settings,
    set_up_replica,
    take_over,
)
from cyrus_testbed.server_config import (
    run_without_uninstalled_services,
    set_options,
    wait_until_serving,
)
from cyrus_testbed.server_image import SERVER_HOSTNAME, SERVER_PACKAGES
from cyrus_testbed.store import CLIENT_PACKAGES, OUR_VERSION, USERS, populate

# The init system makes no difference to a move between two stores: one is enough.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.only_on("systemd")]

DEBIAN_PACKAGES = ["cyrus-imapd", "cyrus-admin", "cyrus-replication", "sasl2-bin", "ssl-cert"]
DEBIAN_CYRUS_CONF = "/etc/cyrus.conf"


@pytest.fixture
def move(docker_engine, images, target, packages_dir, tmp_path) -> Iterator[ReplicatedPair]:
    """Debian 13's server with the upgrade tests' store, and a new one with our packages,
    both as README.Debian leaves them before the switch."""
    old = boot(images, target, packages_dir, hostname=SERVER_HOSTNAME)
    new = None
    try:
        old.install(DEBIAN_PACKAGES + CLIENT_PACKAGES, source="archive")
        assert old.host.package("cyrus-common").version.startswith("3.10."), "not Debian 13's"
        run_without_uninstalled_services(old, "pop3|nntp|http")
        users = provision_users(old, USERS)
        populate(old, users)
        new = boot(images, target, packages_dir, hostname=REPLICA)
        new.install([*SERVER_PACKAGES, "cyrus-replication"])
        new.install(CLIENT_PACKAGES, source="archive")
        with private_network(docker_engine, {SERVER_HOSTNAME: old, REPLICA: new}):
            copy_keeping_owner_and_mode(old, new, SASLDB, tmp_path)
            namespace = imapd_conf_lines(
                block_after("namespace, which Debian's imapd.conf sets as")
            )
            set_options(new, {"servername": SERVERNAME, **namespace})
            set_up_replica(new)

            set_options(old, primary_settings())
            daemon = block_after("in a section of its own (Debian's cyrus.conf has none):")
            old.rewrite_file(DEBIAN_CYRUS_CONF, old.read_file(DEBIAN_CYRUS_CONF) + daemon)
            restart, initial_copy = commands_after("Then restart it and make the initial copy")
            old.check(f"{restart} 2>&1")
            wait_until_serving(old)
            old.check(f"{initial_copy} 2>&1")
            yield ReplicatedPair(old, new, users)
    finally:
        for machine in (new, old):
            if machine is not None:
                machine.stop()


def test_debian_13_replicates_to_our_server_which_takes_over_with_the_same_store(move, figures):
    passwords = move.users.passwords
    _, differences, waited = converged(move.primary, move.replica, passwords)
    assert differences == [], "\n".join(differences[:40])
    # Mail and changes after the initial copy: the rolling client's part.
    for replies in lmtp_deliver_each(
        move.primary, list(passwords), [make_message(f"during the move {n}") for n in range(10)]
    ):
        assert replies.delivered_to_all(), replies
    imap = imap_login(move.primary, "bob", passwords["bob"])
    imap.select("INBOX")
    assert imap.store("1:4", "+FLAGS", "(\\Flagged)")[0] == "OK"
    imap.logout()
    before = fingerprint(move.primary, passwords)

    for command in commands_after("To switch, stop the old server and send"):
        move.primary.check(f"{command} 2>&1")
    take_over(move.replica)

    after = fingerprint(move.replica, passwords)
    differences = before.differences(after)
    figures(
        messages=before.message_count,
        mailboxes=before.mailbox_count,
        caught_up_after_initial_copy_s=round(waited, 1),
        differences=len(differences),
    )
    assert move.replica.host.package("cyrus-common").version == OUR_VERSION
    assert differences == [], "\n".join(differences[:40])
    assert lmtp_deliver(move.replica, ["alice"], make_message("after the move")).delivered_to(
        "alice"
    )
