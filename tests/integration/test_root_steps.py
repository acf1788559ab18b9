"""The cyrus account cannot become root through what root runs at a start. Each test is an
attack by user `cyrus` inside the booted machine: it plants something where cyrus may
write, kills master (which cyrus may do) and lets the next start come as it comes on that
init. Afterwards nothing outside Cyrus's trees changed owner, mode or content, and no
command ran as root. Each test first replays, as root, the step of the previous release
that the attack aimed at, to show that the comparison sees what that step did."""

import json
import re
import shlex
from collections.abc import Iterator

import pytest

from cyrus_testbed.machine import DebianContainer
from cyrus_testbed.server_config import master_pid

pytestmark = pytest.mark.integration

# Root's own trees: an attack that reached root changes something here. /root holds
# the mark a payload leaves when it runs as root.
WATCHED = "/etc /usr /var/lib/dpkg /root"
ROOT_MARK = "/root/ran-as-root"


def system_state(machine: DebianContainer) -> dict[str, str]:
    """Owner, group, mode, size, modification time and link target of every path in
    root's trees."""
    listing = machine.check(f"find {WATCHED} -xdev -printf '%p\\t%u:%g %m %s %T@ %l\\n'")
    return dict(line.split("\t", 1) for line in listing.splitlines())


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [
        f"{path}: {before.get(path, 'absent')} -> {after.get(path, 'absent')}"
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


def kill_master_as_cyrus(machine: DebianContainer) -> str:
    killed = master_pid(machine)
    machine.check(f"kill -9 {killed}", user="cyrus")
    return killed


@pytest.fixture
def attacked(server) -> Iterator[DebianContainer]:
    """The server's machine; after the test, the mark is gone and the service runs."""
    machine = server.machine
    yield machine
    machine.check(f"rm -f {ROOT_MARK}")
    if not machine.service("status").ok:
        restarted = machine.start_again()
        assert restarted.ok, restarted.output
    machine.wait_for_tcp(143)


# Where cyrus puts a link in place of one of its own directories, and what the link
# points to: a directory of root's that the old cyrus-makedirs, following the link,
# handed to cyrus (cyrus then replaces a program root runs, or adds a cron job). A link
# in place of a leaf is left alone; one with directories to make beneath it stops the start.
LINKS = {
    "/var/lib/cyrus/log": "/usr/lib/cyrus",
    "/var/lib/cyrus/user": "/etc/cron.d",
}


@pytest.mark.parametrize("planted", LINKS)
def test_a_link_cyrus_plants_in_its_directories_gives_it_nothing_of_roots_at_the_next_start(
    attacked, planted, behaviour
):
    machine, target = attacked, LINKS[planted]
    before = system_state(machine)
    machine.check(f"rm -rf {planted} && ln -s {target} {planted}", user="cyrus")

    # Control: the step of the old cyrus-makedirs, as root, through the link.
    machine.check(f"install -d -o cyrus -g mail -m 0750 {planted}")
    changed = changes(before, system_state(machine))
    assert any(line.startswith(f"{target}: root:root 755") for line in changed), changed
    machine.check(f"chown root:root {target} && chmod 0755 {target}")
    assert changes(before, system_state(machine)) == []

    started = machine.start_after_master_dies(kill_master_as_cyrus(machine))
    found = changes(before, system_state(machine))
    behaviour(
        f"next start after cyrus replaced {planted} by a link to {target}",
        "started, link left alone" if started.ok else "refused, link named",
    )
    assert found == [], "\n".join(found)
    assert planted in started.output, started.output

    # Nor does the link block a package operation: the reinstall any upgrade or security
    # update makes finishes, and where the start is refused, says why.
    reinstall = machine.run(
        "DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q cyrus-common 2>&1"
    )
    assert reinstall.ok, reinstall.output
    assert machine.check("dpkg --audit") == ""
    assert started.ok or planted in reinstall.output, reinstall.output
    target_now = machine.host.file(target)
    assert (target_now.user, target_now.group, target_now.mode) == ("root", "root", 0o755)
    machine.check(f"rm {planted} && mkdir -m 0750 {planted}", user="cyrus")


def test_cyrus_cannot_put_a_link_where_root_writes_the_assembled_cyrus_conf(attacked, behaviour):
    machine = attacked
    before = system_state(machine)
    link, target = "/run/cyrus/cyrus.conf.new", "/etc/cron.d/cyrus-planted"
    planted = machine.run(f"ln -s {target} {link} 2>&1", user="cyrus")

    # Control: the old layout, where /run/cyrus was cyrus's and the link could be there.
    machine.check(f"ln -s {target} {link} && /usr/lib/cyrus/cyrus-assemble-conf > {link}")
    changed = changes(before, system_state(machine))
    assert any(line.startswith(f"{target}: absent") for line in changed), changed
    machine.check(f"rm {link} {target}")
    before = system_state(machine)  # /etc/cron.d's time moved with the control

    behaviour("cyrus puts a link in /run/cyrus", "refused" if not planted.ok else "allowed")
    assert not planted.ok and "Permission denied" in planted.output, planted.output
    started = machine.start_after_master_dies(kill_master_as_cyrus(machine))
    assert started.ok, started.output
    found = changes(before, system_state(machine))
    assert found == [], "\n".join(found)


# A partition name that, made part of a sed program by the old cyrus-check-mboxlist
# ("s/^metapartition-NAME: //p"), runs a command as root: sed's "e". No blank in it, as
# the old script split the name off at the first one.
PAYLOAD_PARTITION = "x://;1etouch${IFS}" + ROOT_MARK + ";#"
# One record in the form of `ctl_mboxlist -d`, which `ctl_mboxlist -u` reads back.
PLANTED_MAILBOX = (
    "{\n"
    + json.dumps("user.mallory")
    + ": "
    + json.dumps(
        {
            "name": "user.mallory",
            "mbtype": "e",
            "partition": PAYLOAD_PARTITION,
            "acl": {"mallory": "lrswipkxtecdan"},
            "uniqueid": "0d2a5f72-1b91-4e1b-999a-33f539fc9b6c",
            "uidvalidity": "1796180384",
            "name_history": [],
        }
    )
    + "\n}\n"
)


def test_a_partition_name_cyrus_writes_into_the_mailbox_list_runs_nothing_as_root(
    attacked, behaviour
):
    machine = attacked
    before = system_state(machine)
    machine.write_file("/var/tmp/planted-mailbox", PLANTED_MAILBOX)
    machine.check("cyrus ctl_mboxlist -u < /var/tmp/planted-mailbox", user="cyrus")
    assert PAYLOAD_PARTITION in machine.check("cyrus ctl_mboxlist -d")

    # Control: the old setting lookup, as root, with the name from the list.
    machine.check(
        'partition=$(cyrus ctl_mboxlist -d | grep -o \'"partition": "x:[^"]*\' | cut -d\'"\' -f4)'
        ' && /usr/lib/cyrus/bin/cyr_info conf-all | sed -n "s/^metapartition-$partition: //p"'
    )
    assert ROOT_MARK in "\n".join(changes(before, system_state(machine)))
    machine.check(f"rm {ROOT_MARK}")
    before = system_state(machine)  # /root's time moved with the control

    started = machine.start_after_master_dies(kill_master_as_cyrus(machine))
    found = changes(before, system_state(machine))
    behaviour(
        "next start after cyrus wrote a sed command into a partition name",
        "started, nothing ran" if started.ok and not found else "something ran",
    )
    assert found == [], "\n".join(found)
    assert started.ok, started.output
    machine.wait_for_tcp(143)


EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")


@pytest.mark.only_on("systemd")
@pytest.mark.parametrize("unit", ["cyrus-imapd.service", "cyrus-daily.service"])
def test_the_service_units_are_sandboxed_to_an_exposure_of_5_or_less(server, unit, figures):
    """What `systemd-analyze security` makes of the unit, 0 (shut in) to 10 (exposed):
    9.6 before the sandbox; Debian's own cyrus-imapd unit has 9.4."""
    report = server.machine.check(f"systemd-analyze security --no-pager {unit}")
    exposure = EXPOSURE.search(report)
    assert exposure, report
    figures(unit=unit, exposure=float(exposure.group(1)))
    assert float(exposure.group(1)) <= 5.0, report


# Pushes a character into the terminal on its standard input (TIOCSTI) and says whether
# the kernel let it: on root's terminal, that is typing into root's shell.
PUSH_INTO_THE_TERMINAL = (
    '/usr/bin/perl -e \'my $c = "x";'
    ' print ioctl(STDIN, 0x5412, $c) ? "pushed\\n" : "refused: $!\\n"\''
)


def on_roots_terminal(machine: DebianContainer, command: str) -> str:
    """What `command` prints when root runs it on a terminal (a pseudo-terminal of script)."""
    return machine.check(f"script -qec {shlex.quote(command)} /dev/null")


def test_a_program_root_runs_through_the_cyrus_wrapper_cannot_type_into_roots_terminal(
    server, behaviour
):
    machine = server.machine
    # Control: as the old wrapper ran it, straight through setpriv.
    setpriv = "setpriv --reuid=cyrus --regid=mail --init-groups --reset-env --"
    control = on_roots_terminal(machine, f"{setpriv} {PUSH_INTO_THE_TERMINAL}")
    assert "pushed" in control, control

    # cyr_withlock_run runs any program as cyrus: what an attacker who is cyrus gets.
    wrapped = on_roots_terminal(
        machine, f"cyrus cyr_withlock_run -u carol -- {PUSH_INTO_THE_TERMINAL}"
    )
    behaviour("TIOCSTI from a program run through cyrus on root's terminal", wrapped.strip())
    assert "refused: Operation not permitted" in wrapped, wrapped
