"""Replication between two machines, set up only as README.Debian ("Replication: a standby
that follows the server") tells: a primary with users and mail, a new replica, both from
our packages, on a private network of their own. The replica gets the store the primary
already had, then every change as it happens, before the primary answers the client
(and, as a control, within seconds after it when the primary has the rolling client alone);
after a power cut of the primary it takes over with every acknowledged message. On both
init systems: master starts sync_client and sync_server, and each init restarts and
reloads it its own way."""

import hashlib
import imaplib
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cyrus_testbed.boot import boot, booted_server
from cyrus_testbed.clients import (
    SERVERNAME,
    examine,
    hierarchy_separator,
    imap_login,
    lmtp_deliver,
    lmtp_deliver_each,
    make_message,
    provision_users,
    sieve_connect,
)
from cyrus_testbed.fingerprint import fingerprint
from cyrus_testbed.machine import DebianContainer, private_network
from cyrus_testbed.readme_debian import block_after, commands_after
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
    IMAPD_CONF,
    LOCAL_FRAGMENT,
    restart,
    set_options,
    wait_until_serving,
)
from cyrus_testbed.server_image import SERVER_HOSTNAME, SERVER_PACKAGES
from cyrus_testbed.store import CLIENT_PACKAGES, USERS, populate

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SEEN_TIMEOUT_S = 30
CHANGES = 20
RIGHTNOW = 'sync_rightnow_channel: ""'


@dataclass(frozen=True)
class CopiedPair(ReplicatedPair):
    """The pair once the primary's initial copy has run, and how long that took."""

    initial_copy_s: float


def set_up_as_readme_debian_says(
    primary: DebianContainer, replica: DebianContainer, scratch: Path
) -> float:
    """README.Debian's steps, replica first; how long the primary's initial copy took."""
    assert primary.run(f"grep -q '^servername: {SERVERNAME}$' {IMAPD_CONF}").ok
    # README.Debian names the owners and modes to keep.
    for path, group, mode in ((IMAPD_CONF, "mail", 0o640), (SASLDB, "sasl", 0o660)):
        copy_keeping_owner_and_mode(primary, replica, path, scratch)
        copied = replica.host.file(path)
        assert (copied.user, copied.group, copied.mode) == ("root", group, mode), path
    set_up_replica(replica)
    set_options(primary, primary_settings())
    primary.write_file(LOCAL_FRAGMENT, block_after("run the rolling sync_client, in the primary's"))
    restart, initial_copy = commands_after("and copy what the store already holds, once:")
    primary.check(f"{restart} 2>&1")
    wait_until_serving(primary)
    started = time.monotonic()
    primary.check(f"{initial_copy} 2>&1")
    return time.monotonic() - started


@pytest.fixture(scope="module")
def pair(
    docker_engine, images, server_images, target, packages_dir, tmp_path_factory
) -> Iterator[CopiedPair]:
    """The primary holds the upgrade tests' store before replication is set up: the
    initial copy must carry it over whole."""
    with booted_server(images, server_images, target, packages_dir) as server:
        primary = server.machine
        primary.install(["cyrus-replication"])
        primary.install(CLIENT_PACKAGES, source="archive")
        more = provision_users(
            primary, [name for name in USERS if name not in server.users.passwords]
        )
        users = replace(server.users, passwords={**server.users.passwords, **more.passwords})
        populate(primary, users)
        replica = boot(images, target, packages_dir, hostname=REPLICA)
        try:
            replica.install([*SERVER_PACKAGES, "cyrus-replication"])
            replica.install(CLIENT_PACKAGES, source="archive")
            machines = {SERVER_HOSTNAME: primary, REPLICA: replica}
            with private_network(docker_engine, machines):
                seconds = set_up_as_readme_debian_says(
                    primary, replica, tmp_path_factory.mktemp("copies")
                )
                yield CopiedPair(primary, replica, users, seconds)
        finally:
            replica.stop()


def test_the_initial_copy_gives_the_replica_the_store_the_primary_already_had(pair, figures):
    expected, differences, waited = converged(pair.primary, pair.replica, pair.users.passwords)
    figures(
        initial_copy_s=round(pair.initial_copy_s, 1),
        messages=expected.message_count,
        mailboxes=expected.mailbox_count,
        waited_after_it_s=round(waited, 1),
        differences=len(differences),
    )
    assert expected.message_count > 200 and expected.mailbox_count >= 6, expected.users.keys()
    assert differences == [], "\n".join(differences[:40])


def test_the_replica_refuses_a_clients_changes(pair, figures):
    """replicaonly: a folder made or a message appended by a client on the replica does
    not happen, and the replica still equals the primary."""
    imap = imap_login(pair.replica, "alice", pair.users.passwords["alice"])
    outcomes = {}
    separator = hierarchy_separator(imap)
    attempts = {
        "create": lambda: imap.create(f"INBOX{separator}Local"),
        "append": lambda: imap.append("INBOX", None, None, make_message("written on the replica")),
    }
    for name, attempt in attempts.items():
        try:
            outcomes[name] = attempt()[0]
        except imaplib.IMAP4.abort as error:  # the server process ended the session
            outcomes[name] = f"aborted: {error}"
            imap = imap_login(pair.replica, "alice", pair.users.passwords["alice"])
    imap.logout()
    _, differences, _ = converged(pair.primary, pair.replica, pair.users.passwords)
    figures(outcomes=outcomes, differences=len(differences))
    assert "OK" not in outcomes.values(), outcomes
    assert differences == [], "\n".join(differences[:40])


def seconds_until(check: Callable[[], bool], timeout_s: float = SEEN_TIMEOUT_S) -> float:
    """How long until `check` holds; 0 when it holds at the first look."""
    started = time.monotonic()
    if check():
        return 0.0
    while not check():
        assert time.monotonic() - started < timeout_s, f"not seen within {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - started


def delivery_lags(pair: ReplicatedPair, label: str) -> list[float]:
    """Deliver CHANGES messages to alice on the primary, one at a time; for each, how long
    after the 250 the replica showed it (0: at the first look)."""
    replica_imap = imap_login(pair.replica, "alice", pair.users.passwords["alice"])
    lags = []
    for number in range(CHANGES):
        subject = f"{label} {number}"
        replies = lmtp_deliver(pair.primary, ["alice"], make_message(subject))
        assert replies.delivered_to("alice"), replies

        def on_the_replica(subject: str = subject) -> bool:
            examine(replica_imap)
            return bool(replica_imap.search(None, "SUBJECT", f'"{subject}"')[1][0])

        lags.append(seconds_until(on_the_replica))
    replica_imap.logout()
    return lags


def lag_figures(lags: list[float]) -> dict[str, object]:
    return {
        "deliveries": len(lags),
        "lag_median_s": round(statistics.median(lags), 3),
        "lag_max_s": round(max(lags), 3),
        "on_the_replica_at_first_look": sum(lag == 0 for lag in lags),
    }


def test_each_delivery_is_on_the_replica_when_the_primary_acknowledges_it(pair, figures):
    """sync_rightnow_channel: lmtpd sends the message before it answers, so the replica
    has it at the first look after the 250."""
    lags = delivery_lags(pair, "replicated at once")
    figures(**lag_figures(lags))
    assert all(lag == 0 for lag in lags), lags


@contextmanager
def without_rightnow(primary: DebianContainer) -> Iterator[None]:
    """The primary with the rolling client alone, then as README.Debian sets it up again."""
    original = primary.read_file(IMAPD_CONF)
    assert RIGHTNOW in original.splitlines()
    try:
        primary.rewrite_file(IMAPD_CONF, original.replace(f"{RIGHTNOW}\n", ""))
        restart(primary)
        yield
    finally:
        primary.rewrite_file(IMAPD_CONF, original)
        restart(primary)


def test_without_rightnow_the_rolling_client_alone_brings_each_delivery_within_seconds(
    pair, figures
):
    """The rolling client's own lag, and the control of the test above: without
    sync_rightnow_channel, deliveries reach the replica after the 250, not before."""
    with without_rightnow(pair.primary):
        lags = delivery_lags(pair, "replicated by the rolling client")
    figures(**lag_figures(lags))
    assert any(lag > 0 for lag in lags), lags


def test_imap_changes_and_sieve_scripts_reach_the_replica_and_the_stores_stay_equal(pair, figures):
    """Flags, an expunge, a new folder, an ACL, annotations, a quota and a Sieve script,
    made on the primary; then the replica's fingerprint equals the primary's."""
    users = pair.users
    primary = pair.primary
    for replies in lmtp_deliver_each(
        primary, ["alice", "bob"], [make_message(f"mixed {n}") for n in range(10)]
    ):
        assert replies.delivered_to_all(), replies
    imap = imap_login(primary, "alice", users.passwords["alice"])
    separator = hierarchy_separator(imap)
    projects = f"INBOX{separator}Projects"
    assert imap.create(projects)[0] == "OK"
    assert imap.subscribe(projects)[0] == "OK"
    assert imap.setacl(projects, "bob", "lrsw")[0] == "OK"
    imap.select("INBOX")
    assert imap.copy("1:3", projects)[0] == "OK"
    assert imap.store("1:5", "+FLAGS", "(\\Seen \\Flagged)")[0] == "OK"
    assert imap.store("6:8", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert imap.expunge()[0] == "OK"
    imap.logout()
    admin = imap_login(primary, users.admin, users.admin_password)
    assert admin.setquota(f"user{separator}bob", "(STORAGE 250000)")[0] == "OK"
    admin.logout()
    script = 'require ["fileinto"];\nif header :contains "Subject" "[ci]" { fileinto "INBOX"; }\n'
    primary.write_file("/var/tmp/ci.sieve", script)
    sieve_connect(
        primary,
        "bob",
        users.passwords["bob"],
        "--upload --localsieve /var/tmp/ci.sieve --remotesieve ci",
    )
    # ManageSieve changes go by the rolling sync_client alone: its lag.
    sieve_lag = seconds_until(
        lambda: "ci" in sieve_connect(pair.replica, "bob", users.passwords["bob"], "--list")
    )
    expected, differences, waited = converged(pair.primary, pair.replica, pair.users.passwords)
    figures(
        sieve_script_lag_s=round(sieve_lag, 2),
        converged_after_s=round(waited, 1),
        messages=expected.message_count,
        differences=len(differences),
        sieve_digest=hashlib.sha256(script.encode()).hexdigest()[:12],
    )
    assert "ci" in expected.users["bob"]["sieve"], expected.users["bob"]["sieve"]
    assert differences == [], "\n".join(differences[:40])


def test_after_a_power_cut_of_the_primary_the_promoted_replica_has_every_acknowledged_message(
    pair, figures
):
    """The last test of the module: the primary stays dead. A burst of deliveries, the
    primary's power cut right after the last 250, then README.Debian's takeover."""
    users = pair.users
    passwords = users.passwords
    before = fingerprint(pair.primary, passwords)
    burst = [make_message(f"before the cut {n}") for n in range(30)]
    acknowledged = [
        replies.delivered_to("alice")
        for replies in lmtp_deliver_each(pair.primary, ["alice"], burst)
    ]
    assert all(acknowledged), acknowledged
    # SIGKILL, without a state disk: the primary never comes back, so what its page cache
    # would have kept makes no difference.
    pair.primary.power_cut()
    cut_at = time.monotonic()

    take_over(pair.replica)
    imap = imap_login(pair.replica, "alice", passwords["alice"])
    took_over_s = time.monotonic() - cut_at
    count = examine(imap)
    found = imap.search(None, "SUBJECT", '"before the cut"')[1][0].split()
    imap.logout()
    after = fingerprint(pair.replica, passwords)
    differences = before.differences(after)
    new = [line for line in differences if line.startswith("/alice/mailboxes/INBOX/messages/")]
    # alice's quota root counts the burst's bytes; nothing else may differ.
    changed = [
        line for line in differences if line not in new and not line.startswith("/alice/quota")
    ]
    figures(
        acknowledged=len(acknowledged),
        on_the_replica=len(found),
        inbox=count,
        takeover_s=round(took_over_s, 1),
    )
    assert len(found) == len(burst), (len(found), len(burst))
    assert changed == [], "\n".join(changed[:40])
    assert len(new) == len(burst) and all(": new (" in line for line in new), new
    assert lmtp_deliver(pair.replica, ["alice"], make_message("after the takeover")).delivered_to(
        "alice"
    )
