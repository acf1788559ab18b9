"""Bad configuration, as administrators make it. Each mistake either is repaired at start by the
packaged step, or stops the start with words that say what is wrong, in the init system's
status and on the terminal; dpkg can still configure the package, and no mail is lost."""

from dataclasses import dataclass

import pytest

from cyrus_testbed.clients import examine, fetched_message, imap_login, lmtp_deliver, make_message
from cyrus_testbed.server_config import IMAPD_CONF, LOCAL_FRAGMENT

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@dataclass(frozen=True)
class Mistake:
    make: str  # shell, as root
    # Words the administrator must be shown when the start is refused, and how the
    # administrator then fixes it; none when the packaged start step repairs it.
    words: str = ""
    undo: str = ""


MISTAKES = {
    "imapd.conf line without a colon": Mistake(
        f"echo 'this line is not an option' >> {IMAPD_CONF}",
        words="invalid option name on line",
        undo=f"sed -i '/^this line is not an option$/d' {IMAPD_CONF}",
    ),
    "imapd.conf option given twice": Mistake(
        f"echo 'admins: somebody' >> {IMAPD_CONF}",
        words="option 'admins' was specified twice",
        undo=f"sed -i '/^admins: somebody$/d' {IMAPD_CONF}",
    ),
    "cyrus.conf.d entry without a section": Mistake(
        f'echo \'imap cmd="imapd" listen="143"\' > {LOCAL_FRAGMENT}',
        words=LOCAL_FRAGMENT,
        undo=f"rm {LOCAL_FRAGMENT}",
    ),
    "new partition directory missing": Mistake(
        f"echo 'partition-second: /srv/cyrus-second' >> {IMAPD_CONF}"
    ),
    "/var/lib/cyrus owned by root": Mistake(
        "chown root:root /var/lib/cyrus && chmod 0700 /var/lib/cyrus"
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_configuration_mistake_is_repaired_or_named_and_loses_nothing(
    crashable_server, mistake, behaviour
):
    machine, password = crashable_server.machine, crashable_server.users.passwords["alice"]
    kept = make_message(f"kept through {mistake}")
    assert lmtp_deliver(machine, ["alice"], kept).delivered_to("alice")
    assert machine.service("stop").ok
    machine.check(MISTAKES[mistake].make)

    started = machine.service("start")
    words = MISTAKES[mistake].words
    status = machine.service("status")
    shown = started.output + status.output
    behaviour(f"start after: {mistake}", "refused" if not started.ok else "started")
    if words:
        assert not started.ok, "Cyrus started with a broken configuration"
        assert words in shown, shown
        assert not status.ok
        # dpkg can still configure the package: it succeeds (the service stays down) or it
        # fails with the same words.
        reconfigured = machine.run("dpkg-reconfigure -f noninteractive cyrus-common 2>&1")
        assert reconfigured.ok or words in reconfigured.output, reconfigured.output
        machine.check(MISTAKES[mistake].undo)
        assert machine.start_again().ok
    else:
        assert started.ok, shown
    machine.check("DEBIAN_FRONTEND=noninteractive dpkg-reconfigure cyrus-common 2>&1")
    assert machine.host.package("cyrus-common").is_installed

    machine.wait_for_tcp(143)
    state = machine.host.file("/var/lib/cyrus")
    assert (state.user, state.group) == ("cyrus", "mail")
    imap = imap_login(machine, "alice", password)
    examine(imap)
    _, found = imap.search(None, "SUBJECT", f'"kept through {mistake}"')
    stored = fetched_message(imap, found[0].split()[-1])
    imap.logout()
    assert stored.endswith(kept.replace(b"\r\n", b"\n"))
