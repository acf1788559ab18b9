"""Upgrading from Debian's own cyrus-imapd packages to ours loses no mail."""

import time

import pytest

from cyrus_testbed.clients import imap_login, lmtp_deliver, make_message, provision_users
from cyrus_testbed.fingerprint import fingerprint
from cyrus_testbed.mta import POSTFIX_REPORT, send_through_the_mta_until_it_reaches_bob
from cyrus_testbed.server_config import (
    IMAPD_CONF,
    MIGRATED_FRAGMENT,
    run_without_uninstalled_services,
)
from cyrus_testbed.store import (
    CLIENT_PACKAGES,
    MESSAGES_SEEN,
    OUR_VERSION,
    USERS,
    assert_a_new_delivery_is_served,
    populate,
)

pytestmark = [pytest.mark.upgrade, pytest.mark.slow]

DEBIAN_PACKAGES = ["cyrus-imapd", "cyrus-admin", "sasl2-bin", "ssl-cert"]
# Debian 13's own package, and its 3.12 backport (a same-series upgrade
# between two packagings).
DEBIAN_RELEASES = {"trixie": "3.10.", "trixie-backports": "3.12.3"}


@pytest.mark.parametrize(
    "suite",
    [
        pytest.param(suite, marks=pytest.mark.quick) if suite == "trixie" else suite
        for suite in DEBIAN_RELEASES
    ],
)
def test_upgrade_from_debian_13_package_keeps_every_message_and_flag(
    fresh_machine, suite, assert_store_unchanged
):
    machine = fresh_machine
    machine.install(DEBIAN_PACKAGES + CLIENT_PACKAGES, source="archive", release=suite)
    version = machine.host.package("cyrus-common").version
    assert version.startswith(DEBIAN_RELEASES[suite]), version
    run_without_uninstalled_services(machine, "pop3|nntp|http")
    users = provision_users(machine, USERS)
    populate(machine, users)
    before = fingerprint(machine, users.passwords)
    assert before.message_count == MESSAGES_SEEN

    machine.install(["cyrus-imapd", "cyrus-common", "cyrus-admin"])
    assert machine.host.package("cyrus-common").version == OUR_VERSION
    machine.wait_for_tcp(143)

    assert_store_unchanged(before, fingerprint(machine, users.passwords))
    assert_a_new_delivery_is_served(machine, users)
    # The edited cyrus.conf runs on from a fragment, and no port opens that was closed.
    assert "lmtpunix" in machine.read_file(MIGRATED_FRAGMENT)
    assert not machine.listens(993)


def test_upgrade_keeps_an_unedited_debian_imapd_conf_and_the_namespace_it_sets(
    fresh_machine, behaviour, assert_store_unchanged
):
    """dpkg would replace an imapd.conf nobody edited; ucf keeps it, and with it the
    namespace clients know (NEWS.Debian). Users come from sasldb under the host's name
    and get their INBOX at the first login, as Debian's default imapd.conf has it."""
    machine = fresh_machine
    machine.install(DEBIAN_PACKAGES + CLIENT_PACKAGES, source="archive")
    run_without_uninstalled_services(machine, "pop3|nntp|http")
    assert machine.service("restart").ok
    debian_conf = machine.check(f"sha256sum {IMAPD_CONF}")
    passwords = {"alice": "alice-secret"}
    machine.check("echo alice-secret | saslpasswd2 -p -c alice")
    machine.wait_for_tcp(143)
    imap = imap_login(machine, "alice", passwords["alice"])
    assert imap.create("INBOX.Work")[0] == "OK"
    assert imap.append("INBOX.Work", "(\\Flagged)", None, make_message("filed"))[0] == "OK"
    imap.logout()
    assert lmtp_deliver(machine, ["alice"], make_message("delivered")).delivered_to("alice")
    before = fingerprint(machine, passwords)

    machine.install(["cyrus-imapd", "cyrus-common", "cyrus-admin"])
    assert machine.host.package("cyrus-common").version == OUR_VERSION
    machine.wait_for_tcp(143)

    assert machine.check(f"sha256sum {IMAPD_CONF}") == debian_conf
    assert machine.run(f"test -f {IMAPD_CONF}.ucf-dist").ok
    behaviour(
        "folders of an unedited Debian imapd.conf after the upgrade",
        " ".join(fingerprint(machine, passwords).users["alice"]["mailboxes"]),
    )
    assert_store_unchanged(before, fingerprint(machine, passwords))


# Each of our fragments' services, where it listens, once its package is installed.
EVERY_PORT = (143, 993, 110, 995, 119, 563, 8008, 8443, 24, 4190)
SERVICE_PACKAGES = ["cyrus-imapd", "cyrus-pop3d", "cyrus-nntpd", "cyrus-caldav"]


def test_upgrade_from_debian_13_with_every_service_package_and_its_cyrus_conf_opens_every_port(
    fresh_machine, behaviour, assert_store_unchanged
):
    """Debian 13's cyrus.conf as shipped runs imap, pop3, nntp and http. Unedited, it gives way
    to our fragments; the service packages are configured after cyrus-common, and each one's
    trigger reloads a master that runs as cyrus by then: on a host, ports below 1024 open only
    through the capability master keeps."""
    machine = fresh_machine
    machine.install(
        [*SERVICE_PACKAGES, "cyrus-admin", "sasl2-bin", "ssl-cert", *CLIENT_PACKAGES],
        source="archive",
    )
    assert machine.host.package("cyrus-common").version.startswith("3.10.")
    users = provision_users(machine, ("alice",))
    for port in (143, 110, 119, 8008):
        machine.wait_for_tcp(port)
    delivered = lmtp_deliver(machine, ["alice"], make_message("before every service moved"))
    assert delivered.delivered_to("alice"), delivered
    before = fingerprint(machine, users.passwords)
    logged_before = len(machine.cyrus_log().splitlines())

    machine.install([*SERVICE_PACKAGES, "cyrus-common", "cyrus-admin"])
    assert machine.host.package("cyrus-common").version == OUR_VERSION

    for port in EVERY_PORT:
        machine.wait_for_tcp(port)
    machine.wait_for_unix_socket("/run/cyrus/socket/lmtp")
    assert not machine.run(f"test -e {MIGRATED_FRAGMENT}").ok
    logged = machine.cyrus_log().splitlines()[logged_before:]
    refused = [line for line in logged if "unable to bind" in line]
    behaviour("bind failures after the upgrade with every service package", str(len(refused)))
    assert not refused, "\n".join(refused)
    assert_store_unchanged(before, fingerprint(machine, users.passwords))
    # A conffile Debian's packages had and ours do not must go with the upgrade, not stay
    # registered to a package that no longer ships it.
    conffiles = machine.check("dpkg-query -W -f='${Conffiles}\\n' 'cyrus-*'")
    assert [line for line in conffiles.splitlines() if line.endswith(" obsolete")] == []


# How Debian's own README.Debian had Postfix deliver to Cyrus: its user in group mail.
POSTFIX_AS_DEBIAN_SAID = (
    "adduser postfix mail",
    "postconf -F 'lmtp/unix/chroot = n'",
    "postconf -e 'mailbox_transport = lmtp:unix:/run/cyrus/socket/lmtp'",
    "service postfix restart",
)


def test_upgrade_from_debian_13_keeps_postfix_delivering_through_the_lmtp_socket(
    fresh_machine, behaviour
):
    """The socket directory's group changes from mail to cyrus-lmtp (NEWS.Debian): the
    upgrade puts a postfix that was in mail into cyrus-lmtp, and no mail waits."""
    machine = fresh_machine
    machine.install([*DEBIAN_PACKAGES, "postfix", *CLIENT_PACKAGES], source="archive")
    run_without_uninstalled_services(machine, "pop3|nntp|http")
    assert machine.service("restart").ok
    users = provision_users(machine, ("bob",))
    for command in POSTFIX_AS_DEBIAN_SAID:
        machine.check(f"{command} 2>&1")
    send_through_the_mta_until_it_reaches_bob(
        machine, users.passwords["bob"], "postfix", POSTFIX_REPORT
    )

    machine.install(["cyrus-imapd", "cyrus-common", "cyrus-admin"])
    assert machine.host.package("cyrus-common").version == OUR_VERSION
    machine.wait_for_unix_socket("/run/cyrus/socket/lmtp")
    assert machine.host.file("/run/cyrus/socket").group == "cyrus-lmtp"
    # Postfix's idle lmtp clients still hold the old groups; new ones get cyrus-lmtp.
    machine.check("service postfix restart 2>&1")
    send_through_the_mta_until_it_reaches_bob(
        machine, users.passwords["bob"], "postfix-upgraded", POSTFIX_REPORT
    )
    behaviour(
        "Postfix in group mail, after the upgrade from Debian 13",
        "in cyrus-lmtp too, delivers",
    )
    assert "cyrus-lmtp" in machine.check("id -Gn postfix").split()


UPGRADE_LOG = "/var/tmp/upgrade.log"
CUT_WAIT_S = 120


def unpacked_not_configured(machine) -> bool:
    """Whether dpkg has unpacked our cyrus-common and not configured it yet; fails the test
    if the upgrade got past that point unseen."""
    version, status = machine.check(
        "dpkg-query -W -f='${Version} ${db:Status-Abbrev}' cyrus-common"
    ).split(maxsplit=1)
    if version != OUR_VERSION:
        return False
    assert not status.startswith("ii"), "the upgrade was configured before the cut: too fast"
    return True


def test_a_power_cut_between_unpack_and_configure_of_the_upgrade_loses_no_mail(
    fresh_machine_on_its_own_disk, behaviour, figures, assert_store_unchanged
):
    """The store and the dpkg database share an ext4 disk that loses what was never synced;
    the programs dpkg unpacked (on the machine's overlay) are kept, as a journal keeps
    fsynced files: dpkg syncs every file it unpacks before it records the unpack."""
    machine = fresh_machine_on_its_own_disk
    machine.install(DEBIAN_PACKAGES + CLIENT_PACKAGES, source="archive")
    run_without_uninstalled_services(machine, "pop3|nntp|http")
    users = provision_users(machine, USERS)
    populate(machine, users)
    before = fingerprint(machine, users.passwords)
    machine.state_disk.sync()  # the store was there long before the upgrade

    machine.install(["cyrus-imapd", "cyrus-common", "cyrus-admin"], in_background_to=UPGRADE_LOG)
    machine.wait_until(
        "dpkg-query -W -f='${Version}' cyrus-common | grep -qv '^3[.]10[.]'",
        CUT_WAIT_S,
        "the upgrade did not unpack our cyrus-common",
    )
    while not unpacked_not_configured(machine):
        time.sleep(0.05)
    machine.power_cut()
    verdict = machine.power_on()
    assert verdict is not None and verdict.acceptable, verdict
    unsynced_write_lost = not machine.state_disk.canary_survived()

    status_after_cut = machine.check(
        "dpkg-query -W -f='${db:Status-Abbrev} ${Version}' cyrus-common"
    ).strip()
    # What README.Debian tells after an upgrade the machine did not survive. The cut can
    # land while dpkg unpacks a later package of the same run (it did once in CI, under
    # load): dpkg marks that one reinst-required, and only a reinstallation mends it.
    configure = machine.run("DEBIAN_FRONTEND=noninteractive dpkg --configure -a 2>&1")
    statuses = machine.check("dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n'")
    reinstall = [line.split()[1] for line in statuses.splitlines() if line[2:3] == "R"]
    if reinstall:
        machine.check(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall " + " ".join(reinstall)
        )
    audit = machine.check("dpkg --audit")
    figures(
        fsck=" / ".join(verdict.output.splitlines()),
        status_after_cut=status_after_cut,
        configure_exit=configure.exit_code,
        reinstalled=" ".join(reinstall) or "none",
        unsynced_write_lost=unsynced_write_lost,
    )
    behaviour(
        "power cut between unpack and configure of the upgrade from Debian 13",
        f"dpkg --configure -a exit {configure.exit_code}, audit {audit.strip() or 'clean'}",
    )
    assert unsynced_write_lost, "the rig's unsynced write survived the cut: it cuts nothing"
    assert configure.ok, configure.output
    assert audit == "", audit
    assert machine.host.package("cyrus-common").version == OUR_VERSION
    machine.wait_for_tcp(143)
    assert_store_unchanged(before, fingerprint(machine, users.passwords))
    assert_a_new_delivery_is_served(machine, users)
