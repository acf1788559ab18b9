"""What installing, removing, purging and misconfiguring does to a running server."""

import re

import pytest

from cyrus_testbed.clients import (
    examine,
    fetched_message,
    imap_login,
    lmtp_deliver,
    make_message,
    provision_users,
)
from cyrus_testbed.debian_control import binary_packages
from cyrus_testbed.init_systems import packaged_cron_entry, run_by_cron
from cyrus_testbed.machine import LOCAL_SOURCE
from cyrus_testbed.server_config import master_pid

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# Each package with a service, and the ports its fragment opens.
SERVICE_PACKAGES = {
    "cyrus-pop3d": (110, 995),
    "cyrus-nntpd": (119, 563),
    "cyrus-caldav": (8008, 8443),
}


def test_installing_each_service_package_opens_its_ports_and_removing_it_closes_them_keeping_master(
    fresh_machine,
):
    """A package change reloads master, which runs as cyrus by then: on a host (ports below
    1024 privileged) only the capability it keeps lets it bind the new ports."""
    machine = fresh_machine
    machine.install(["cyrus-imapd"])
    machine.wait_for_tcp(143)
    machine.wait_for_tcp(993)
    pid = master_pid(machine)
    for package, ports in SERVICE_PACKAGES.items():
        assert not any(machine.listens(port) for port in ports), package
        machine.install([package])
        for port in ports:
            machine.wait_for_tcp(port)
    assert "unable to bind" not in machine.cyrus_log()

    for package, ports in SERVICE_PACKAGES.items():
        machine.check(f"DEBIAN_FRONTEND=noninteractive apt-get remove -y {package}")
        for port in ports:
            machine.wait_for_tcp_closed(port)
    assert machine.listens(143) and machine.listens(993)
    assert master_pid(machine) == pid
    assert "pop3d is not installed" in machine.read_file("/run/cyrus/cyrus.conf")


def test_broken_imapd_conf_fails_the_start_with_cyrus_own_words_and_loses_nothing(
    fresh_machine, behaviour
):
    machine = fresh_machine
    machine.install(["cyrus-imapd"])
    machine.wait_for_tcp(143)
    original = machine.read_file("/etc/imapd.conf")
    machine.check("echo 'admins: somebody' >> /etc/imapd.conf")

    restart = machine.service("restart")
    assert not restart.ok
    # sysvinit prints Cyrus's words on the terminal, systemd in the unit's status.
    status = machine.service("status")
    assert not status.ok
    words = "option 'admins' was specified twice"
    shown_by = [
        name
        for name, result in (("restart", restart), ("status", status))
        if words in result.output
    ]
    behaviour("a broken imapd.conf: Cyrus's error shown by", " and ".join(shown_by) or "nothing")
    assert shown_by, restart.output + status.output
    assert not machine.listens(143)
    machine.check("test -d /var/lib/cyrus && test -d /var/spool/cyrus/mail")

    machine.rewrite_file("/etc/imapd.conf", original)
    assert machine.start_again().ok
    machine.wait_for_tcp(143)


def test_purge_keeps_the_mail_store_unless_asked_to_delete_it(fresh_machine):
    machine = fresh_machine
    machine.install(["cyrus-imapd"])
    machine.wait_for_unix_socket("/run/cyrus/socket/lmtp")
    machine.check("cyrus ctl_mboxlist -d > /dev/null")
    spool = "/var/spool/cyrus/mail"

    machine.check("DEBIAN_FRONTEND=noninteractive apt-get purge -y cyrus-imapd cyrus-common")
    assert not machine.run("test -e /etc/imapd.conf").ok
    assert not machine.run("test -e /etc/cyrus.conf.d").ok
    assert machine.run(f"test -d {spool} && test -d /var/lib/cyrus").ok

    machine.install(["cyrus-imapd"])
    machine.wait_for_tcp(143)
    machine.check(
        "CYRUS_PURGE_MAIL=yes DEBIAN_FRONTEND=noninteractive"
        " apt-get purge -y cyrus-imapd cyrus-common"
    )
    assert not machine.run(f"test -e {spool}").ok
    assert not machine.run("test -e /var/lib/cyrus").ok


def test_mail_configuration_and_its_statoverride_survive_remove_and_reinstall(fresh_machine):
    machine = fresh_machine
    machine.install(["cyrus-imapd", "sasl2-bin", "ssl-cert"])
    users = provision_users(machine)
    message = make_message("kept across remove and reinstall")
    assert lmtp_deliver(machine, ["bob"], message).delivered_to("bob")
    machine.check("echo '# local change' >> /etc/imapd.conf")
    # README.Debian: an owner and mode the administrator gives imapd.conf this way are kept.
    machine.check("dpkg-statoverride --update --add root mail 0440 /etc/imapd.conf")

    machine.check("DEBIAN_FRONTEND=noninteractive apt-get remove -y cyrus-imapd cyrus-common")
    assert "# local change" in machine.read_file("/etc/imapd.conf")
    # The daily job's cron line stays until the purge (Policy 9.5): cron runs it, and it
    # must do nothing, not even print.
    assert not run_by_cron(machine, machine.init, packaged_cron_entry(machine)).printed
    machine.install(["cyrus-imapd"])
    machine.wait_for_tcp(143)
    conf = machine.host.file("/etc/imapd.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "mail", 0o440)

    imap = imap_login(machine, "bob", users.passwords["bob"])
    examine(imap)
    assert fetched_message(imap, "1").endswith(message.replace(b"\r\n", b"\n"))
    imap.logout()


def test_no_package_operation_fails_over_what_cyrus_can_break(fresh_machine):
    """An imapd.conf Cyrus cannot parse (a key given twice) and a link planted by cyrus in
    a directory cyrus-makedirs manages: the reinstall that any upgrade makes, the removal
    and the purge of every package finish, say what is wrong, and leave dpkg's database
    clean. The link's target is left alone."""
    machine = fresh_machine
    every_package = binary_packages()
    packages = " ".join(every_package)
    machine.install([*every_package, "sasl2-bin"])
    machine.check("echo 'admins: somebody' >> /etc/imapd.conf")
    machine.check("rm -rf /var/lib/cyrus/quota && ln -s /tmp /var/lib/cyrus/quota", user="cyrus")

    printed = {}
    for operation in ("install --reinstall", "remove", "purge"):
        run = machine.run(
            f"DEBIAN_FRONTEND=noninteractive apt-get {operation} -y -q {packages} 2>&1"
        )
        assert run.ok, run.output
        assert machine.check("dpkg --audit") == "", operation
        printed[operation] = run.output
    assert "specified twice" in printed["install --reinstall"], printed["install --reinstall"]
    assert "correct what the lines above name" in printed["install --reinstall"]
    left = machine.run(
        f"dpkg-query -W -f='${{Package}} ${{db:Status-Status}}\\n' {packages} 2>/dev/null"
    )
    assert [line for line in left.output.splitlines() if not line.endswith(" not-installed")] == []
    tmp = machine.host.file("/tmp")
    assert (tmp.user, tmp.group, tmp.mode) == ("root", "root", 0o1777)


# Where dpkg, apt, init systems and logs keep their own state: not ours to clean.
SYSTEM_STATE = (
    "/var/lib/apt/",
    "/var/lib/dpkg/",
    "/var/cache/",
    "/var/log/",
    "/var/lib/systemd/",
    "/var/lib/ucf/",
    "/var/tmp/",
    "/usr/local/lib/cyrus-tests",
    LOCAL_SOURCE,  # the harness's own apt source for our repository
)


# insserv renumbers the links of every boot script when one comes or goes: a link is known
# by its runlevel, start or kill, and script, not by its sequence number.
RC_LINK_NUMBER = re.compile(r"^(/etc/rc[0-6S]\.d/[SK])\d\d")


def filesystem(machine) -> set[str]:
    listing = machine.check("find /etc /usr /var /srv /opt -xdev 2>/dev/null || true")
    return {
        RC_LINK_NUMBER.sub(r"\1", path)
        for path in listing.splitlines()
        if not path.startswith(SYSTEM_STATE)
    }


def test_purge_leaves_no_file_that_no_package_owns(fresh_machine, behaviour):
    """In the manner of piuparts: install, use, purge with the mail and with what the
    installation pulled in (ssl-cert's snakeoil pair is ssl-cert's to remove), compare."""
    machine = fresh_machine
    before = filesystem(machine)
    machine.install(["cyrus-imapd", "cyrus-pop3d"])
    machine.wait_for_tcp(110)
    machine.check("cyrus ctl_mboxlist -d > /dev/null")
    assert machine.service("restart").ok
    machine.wait_for_tcp(143)
    machine.check(
        "CYRUS_PURGE_MAIL=yes DEBIAN_FRONTEND=noninteractive"
        " apt-get purge -y --autoremove cyrus-pop3d cyrus-imapd cyrus-common 2>&1"
    )
    owned = set(machine.check("cat /var/lib/dpkg/info/*.list").splitlines())
    left = sorted(filesystem(machine) - before - owned)
    behaviour("files left after a purge with CYRUS_PURGE_MAIL=yes", " ".join(left) or "none")
    assert left == [], "\n".join(left)
