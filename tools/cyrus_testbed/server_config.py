"""Change a running server's configuration as an administrator would, and put it back."""

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from .clients import LMTP_SOCKET
from .machine import DebianContainer

IMAPD_CONF = "/etc/imapd.conf"
LOCAL_FRAGMENT = "/etc/cyrus.conf.d/99-local.conf"
# Where the upgrade from Debian's own packages carries an edited cyrus.conf.
MIGRATED_FRAGMENT = "/etc/cyrus.conf.d/80-migrated-cyrus.conf"
# A 99-local.conf that turns idled off, so imapd polls every imapidlepoll seconds.
WITHOUT_IDLED = "DAEMON {\n  idled disabled\n}\n"


def master_pid(machine: DebianContainer) -> str:
    return machine.read_file("/run/cyrus/master.pid").strip()


def run_without_uninstalled_services(machine: DebianContainer, services: str) -> None:
    """Debian's own cyrus.conf starts services (such as pop3, nntp, http) whose
    programs are in packages not installed, and its master then exits: comment
    them out as an administrator would. `services` is a regex alternation."""
    machine.check(rf"sed -i -E 's/^(\s*({services})\s)/#\1/' /etc/cyrus.conf")


def with_options(conf: str, options: Mapping[str, str]) -> str:
    """imapd.conf text with each option set: in place where the key is already
    given (a key given twice is fatal to Cyrus), appended otherwise."""
    for key, value in options.items():
        line = f"{key}: {value}"
        pattern = re.compile(rf"^{re.escape(key)}\s*:.*$", re.M)
        if pattern.search(conf):
            conf = pattern.sub(line.replace("\\", r"\\"), conf)
        else:
            conf = conf.rstrip("\n") + f"\n{line}\n"
    return conf


def set_options(machine: DebianContainer, options: dict[str, str]) -> None:
    """Set the options in imapd.conf as an administrator editing it does: in place where the
    key is there already (Cyrus refuses a key given twice), at the end otherwise."""
    machine.rewrite_file(IMAPD_CONF, with_options(machine.read_file(IMAPD_CONF), options))


def restart(machine: DebianContainer) -> None:
    # Tests reconfigure faster than any administrator: no start limit must refuse them.
    machine.init.clear_start_limit(machine, "cyrus-imapd")
    result = machine.service("restart")
    assert result.ok, f"restart failed:\n{result.output}"
    wait_until_serving(machine)


def wait_until_serving(machine: DebianContainer) -> None:
    """Until master has opened IMAP and the LMTP socket: what the tests reach it by."""
    machine.wait_for_tcp(143)
    machine.wait_for_unix_socket(LMTP_SOCKET)


@contextmanager
def reconfigured(
    machine: DebianContainer,
    *,
    options: Mapping[str, str] | None = None,
    local_fragment: str | None = None,
) -> Iterator[None]:
    """Run the server with these imapd.conf options and this 99-local.conf fragment,
    then restore both and restart, whatever the test did."""
    original = machine.read_file(IMAPD_CONF)
    try:
        if options:
            machine.rewrite_file(IMAPD_CONF, with_options(original, options))
        if local_fragment is not None:
            machine.write_file(LOCAL_FRAGMENT, local_fragment)
        restart(machine)
        yield
    finally:
        machine.rewrite_file(IMAPD_CONF, original)
        machine.check(f"rm -f {LOCAL_FRAGMENT}")
        restart(machine)
