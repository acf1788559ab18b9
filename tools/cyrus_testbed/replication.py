"""Replication as README.Debian ("Replication: a standby that follows the server") sets it
up, step by step, on machines of a test's private network; and the wait until a replica
holds what its primary holds."""

import time
from dataclasses import dataclass
from pathlib import Path

from .clients import CyrusUsers
from .fingerprint import Fingerprint, fingerprint
from .machine import DebianContainer
from .readme_debian import block_after, commands_after, imapd_conf_lines
from .server_config import IMAPD_CONF, LOCAL_FRAGMENT, set_options, wait_until_serving

REPLICA = "replica"
REPLICATION_PASSWORD = "replication-secret"
SASLDB = "/etc/sasldb2"
SYNC_SERVER_PORT = 2005
# What README.Debian's recipe names, and what stands for it on the test's network.
README_REPLICA_HOST = "replica.example.org"
README_PASSWORD = "PASSWORD"
# A bound, not a target: the rolling client sends within a second or so.
CONVERGE_TIMEOUT_S = 120


@dataclass(frozen=True)
class ReplicatedPair:
    """A primary, its replica, and the users both serve."""

    primary: DebianContainer
    replica: DebianContainer
    users: CyrusUsers

    @property
    def machines(self) -> dict[str, DebianContainer]:
        """Both, for a failure report."""
        return {"primary": self.primary, "replica": self.replica}


def copy_keeping_owner_and_mode(
    source: DebianContainer, target: DebianContainer, path: str, scratch: Path
) -> None:
    """What `scp -p` and a chown do: the file, byte for byte, with its owner and mode."""
    copy = scratch / Path(path).name
    source.copy_from_container(path, copy)
    found = source.host.file(path)
    target.write_file(path, copy.read_bytes(), mode=found.mode)
    target.check(f"chown {found.user}:{found.group} {path}")


def set_up_replica(replica: DebianContainer) -> None:
    """The replica's steps after its configuration and accounts are in place: the account
    the primary logs in as, an administrator, and sync_server."""
    account = commands_after("account the primary will log in as, under that servername:")
    assert len(account) == 1 and account[0].startswith("saslpasswd2 -c "), account
    replica.check(f"echo {REPLICATION_PASSWORD} | {account[0].replace('-c ', '-p -c ', 1)}")
    set_options(replica, imapd_conf_lines(block_after("the admins line becomes the first of")))
    replica.write_file(LOCAL_FRAGMENT, block_after("and run sync_server, in its"))
    for command in commands_after("then reload the replica:"):
        replica.check(f"{command} 2>&1")
    replica.wait_for_tcp(SYNC_SERVER_PORT)


def primary_settings() -> dict[str, str]:
    """The primary's imapd.conf lines, aimed at the test's replica."""
    settings = block_after("host name and the password you gave the account:")
    return imapd_conf_lines(
        settings.replace(README_REPLICA_HOST, REPLICA).replace(
            README_PASSWORD, REPLICATION_PASSWORD
        )
    )


def take_over(replica: DebianContainer) -> None:
    """README.Debian's takeover on the replica: no more sync_server, no more replicaonly.
    The test's 99-local.conf held the syncserver lines alone."""
    replica.check(f"rm {LOCAL_FRAGMENT}")
    replica.check(f"sed -i '/^replicaonly:/d' {IMAPD_CONF}")
    for command in commands_after("line from its imapd.conf, and restart:"):
        replica.check(f"{command} 2>&1")
    replica.wait_for_tcp_closed(SYNC_SERVER_PORT)
    wait_until_serving(replica)


def converged(
    primary: DebianContainer,
    replica: DebianContainer,
    passwords: dict[str, str],
    timeout_s: float = CONVERGE_TIMEOUT_S,
) -> tuple[Fingerprint, list[str], float]:
    """The primary's fingerprint, the replica's differences from it once they are none or
    the time is up, and how long that took."""
    expected = fingerprint(primary, passwords)
    started = time.monotonic()
    while True:
        differences = expected.differences(fingerprint(replica, passwords))
        if not differences or time.monotonic() - started > timeout_s:
            return expected, differences, time.monotonic() - started
        time.sleep(1)
