"""Installing the packages gives a working mail server, the same under systemd and sysvinit."""

import re

import pytest

from cyrus_testbed.clients import (
    TEST_FILES,
    examine,
    fetched_message,
    imap_connect,
    imap_login,
    imaps_connect,
    lmtp_deliver,
    make_message,
    provision_users,
)
from cyrus_testbed.init_systems import packaged_cron_entry, run_by_cron

pytestmark = pytest.mark.integration


@pytest.mark.quick
def test_installing_cyrus_imapd_alone_gives_a_running_imap_server(fresh_machine):
    fresh_machine.install(["cyrus-imapd"])
    fresh_machine.wait_for_tcp(143)
    fresh_machine.wait_for_tcp(993)
    assert fresh_machine.host.service("cyrus-imapd").is_running
    greeting = imap_connect(fresh_machine, starttls=False).welcome.decode()
    assert greeting.startswith("* OK")
    assembled = fresh_machine.read_file("/run/cyrus/cyrus.conf")
    assert re.search(r"^  imap\s", assembled, re.M)
    assert not re.search(r"^  pop3\s", assembled, re.M)


def test_installed_without_recommends_a_user_logs_in_over_tls(fresh_machine):
    """imapd.conf as shipped refuses passwords outside TLS and names the snakeoil pair: a
    server without ssl-cert would let nobody log in, so it comes along with cyrus-common
    even when apt skips recommends (install() does)."""
    fresh_machine.install(["cyrus-imapd", "sasl2-bin"])
    fresh_machine.wait_for_tcp(993)
    users = provision_users(fresh_machine, ("alice",))
    implicit = imaps_connect(fresh_machine)
    assert implicit.login("alice", users.passwords["alice"])[0] == "OK"
    implicit.logout()
    starttls = imap_login(fresh_machine, "alice", users.passwords["alice"])
    assert starttls.state == "AUTH"
    starttls.logout()


def test_cyrus_user_has_primary_group_mail_and_is_in_sasl_and_ssl_cert(server):
    cyrus = server.machine.host.user("cyrus")
    assert cyrus.exists
    assert cyrus.group == "mail"
    assert {"sasl", "ssl-cert"} <= set(cyrus.groups)
    assert cyrus.home == "/var/lib/cyrus"
    assert cyrus.shell == "/usr/sbin/nologin"


# /run/cyrus is root's: root writes the assembled cyrus.conf into it.
DIRECTORY_OWNERS_AND_MODES = {
    "/run/cyrus": ("root", "root", 0o755),
    "/run/cyrus/socket": ("cyrus", "cyrus-lmtp", 0o750),
    "/run/cyrus/lock": ("cyrus", "mail", 0o700),
    "/run/cyrus/proc": ("cyrus", "mail", 0o700),
    "/var/lib/cyrus": ("cyrus", "mail", 0o750),
    "/var/lib/cyrus/user": ("cyrus", "mail", 0o750),
    "/var/spool/cyrus/mail": ("cyrus", "mail", 0o750),
    "/var/spool/sieve": ("cyrus", "mail", 0o750),
}


@pytest.mark.parametrize("path", DIRECTORY_OWNERS_AND_MODES)
def test_directory_has_documented_owner_and_mode(server, path):
    directory = server.machine.host.file(path)
    assert directory.is_directory
    assert (directory.user, directory.group, directory.mode) == DIRECTORY_OWNERS_AND_MODES[path]


def test_imapd_conf_is_readable_by_group_mail_only(server):
    conf = server.machine.host.file("/etc/imapd.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "mail", 0o640)


def test_runtime_directories_come_back_after_a_reboot(server):
    machine = server.machine
    machine.check("test -S /run/cyrus/socket/lmtp")
    machine.reboot()
    machine.wait_for_unix_socket("/run/cyrus/socket/lmtp")
    machine.wait_for_tcp(143)
    socket_dir = machine.host.file("/run/cyrus/socket")
    assert (socket_dir.user, socket_dir.group, socket_dir.mode) == ("cyrus", "cyrus-lmtp", 0o750)


@pytest.mark.quick
def test_lmtp_delivery_over_unix_socket_reaches_inbox(server):
    message = make_message("delivered over the unix socket")
    replies = lmtp_deliver(server.machine, ["alice"], message)
    assert replies.delivered_to("alice"), replies
    imap = imap_login(server.machine, "alice", server.users.passwords["alice"])
    examine(imap)
    status, found = imap.search(None, "SUBJECT", '"delivered over the unix socket"')
    assert status == "OK" and len(found[0].split()) == 1
    stored = fetched_message(imap, found[0].split()[0])
    # lmtpd puts Return-Path and Received in front; the rest is byte for byte ours.
    assert stored.startswith(b"Return-Path: <s@example.test>\n")
    assert stored.endswith(message.replace(b"\r\n", b"\n"))
    imap.logout()


def test_plaintext_login_is_refused_without_tls(server):
    imap = imap_connect(server.machine, starttls=False)
    _, capabilities = imap.capability()
    assert b"LOGINDISABLED" in capabilities[0]
    with pytest.raises(imap.error):
        imap.login("alice", server.users.passwords["alice"])


def test_cyrus_wrapper_lists_utilities_and_runs_them_as_cyrus(server):
    machine = server.machine
    listing = machine.check("cyrus --help")
    assert "  reconstruct\n" in listing and "  ctl_mboxlist\n" in listing
    mailboxes = machine.check("cyrus ctl_mboxlist -d")
    assert "user/alice" in mailboxes or "user.alice" in mailboxes
    unknown = machine.run("cyrus no-such-tool")
    assert unknown.exit_code == 2 and "cyrus --help" in unknown.output
    # The short names of Debian's own wrapper (NEWS.Debian).
    assert machine.check("cyrus mboxlist -d") == mailboxes
    assert "Expire messages" in machine.run("cyrus expire -h").output
    machine.check("cyrus check")
    machine.check("cyrus makedirs -q")


MAILBOX_LIST_DUMP = "/var/backups/cyrus-mboxlist.txt"


def test_daily_job_run_by_the_scheduler_checkpoints_the_databases_and_dumps_the_mailbox_list(
    server, behaviour
):
    """The job as the machine's own scheduler starts it at night (systemd's timer, or cron
    with its own environment), retimed to run now."""
    machine = server.machine
    dump = machine.host.file(MAILBOX_LIST_DUMP)
    machine.check(f"rm -f {MAILBOX_LIST_DUMP}*")
    machine.init.run_daily_job(machine)
    behaviour("daily mailbox-list dump runs from", machine.init.daily_job)
    assert dump.exists and dump.mode == 0o600
    assert "alice" in dump.content_string
    # Its checkpoint, after master's at the start, rotated the databases' archive.
    assert "DBERROR: archive" not in machine.cyrus_log()
    for archive in ("db.backup1", "db.backup2"):
        assert machine.host.file(f"/var/lib/cyrus/{archive}/mailboxes.db").exists


@pytest.mark.only_on("systemd")
def test_cron_line_stands_aside_where_the_timer_runs_the_daily_job(server):
    machine = server.machine
    machine.check(f"rm -f {MAILBOX_LIST_DUMP}*")
    job = run_by_cron(machine, machine.init, packaged_cron_entry(machine))
    assert not job.printed
    assert not machine.host.file(MAILBOX_LIST_DUMP).exists
    assert machine.check("systemctl is-enabled cyrus-daily.timer").strip() == "enabled"


def test_cyrus_makedirs_creates_hashed_partitions_and_is_idempotent(server):
    machine = server.machine
    machine.write_file(
        f"{TEST_FILES}/alt-imapd.conf",
        "configdirectory: /srv/alt/config\npartition-default: /srv/alt/spool\n"
        "partition-second: /srv/alt/second\nmetapartition-second: /srv/alt/meta\n"
        "sievedir: /srv/alt/sieve\nhashimapspool: yes\nfulldirhash: yes\n",
    )
    first = machine.check(f"cyrus-makedirs -C {TEST_FILES}/alt-imapd.conf")
    assert "creating /srv/alt/second/W" in first
    for path in (
        "/srv/alt/spool/A",
        "/srv/alt/meta/W",
        "/srv/alt/config/user/K",
        "/srv/alt/sieve/B",
    ):
        directory = machine.host.file(path)
        assert (directory.user, directory.group, directory.mode) == ("cyrus", "mail", 0o750)
    assert not machine.host.file("/srv/alt/spool/a").exists
    assert machine.check(f"cyrus-makedirs -C {TEST_FILES}/alt-imapd.conf") == ""


def test_cyrus_makedirs_reports_a_config_it_cannot_parse(server):
    machine = server.machine
    machine.write_file(f"{TEST_FILES}/bad-imapd.conf", "partition-default /no/colon\n")
    result = machine.run(f"cyrus-makedirs -C {TEST_FILES}/bad-imapd.conf 2>&1")
    assert result.exit_code == 1
    assert "Cyrus cannot parse" in result.output


def test_lmtp_delivers_to_several_recipients_and_refuses_an_unknown_one(server):
    message = make_message("to several recipients")
    replies = lmtp_deliver(server.machine, ["alice", "nobody", "bob"], message)
    assert replies.rcpt["nobody"].startswith("550"), replies
    assert replies.delivered_to("alice"), replies
    assert replies.delivered_to("bob"), replies
    assert "nobody" not in replies.data


IMCLIENT_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <imclient.h>

/* The Cyrus libraries leave fatal() to the program, as upstream's clients do. */
void fatal(const char *message, int code)
{
    fprintf(stderr, "%s\n", message);
    exit(code);
}

int main(void)
{
    struct imclient *client;
    /* ManageSieve, which cyrus-common's master offers on loopback */
    if (imclient_connect(&client, "127.0.0.1", "4190", NULL) != 0) return 1;
    imclient_close(client);
    puts("connected");
    return 0;
}
"""


def test_a_program_builds_against_imclient_h_with_what_cyrus_dev_depends_on(fresh_machine):
    """cyrus-dev's headers include SASL's and OpenSSL's: its Depends must bring them."""
    machine = fresh_machine
    machine.install(["cyrus-dev", "gcc", "libc6-dev", "pkgconf"])
    machine.wait_for_tcp(4190)
    machine.write_file(f"{TEST_FILES}/imclient-check.c", IMCLIENT_PROGRAM)
    built = machine.check(
        f"cd {TEST_FILES} && gcc -Wall -Werror -o imclient-check imclient-check.c"
        " $(pkg-config --cflags --libs libcyrus) 2>&1 && ./imclient-check"
    )
    assert built.strip().endswith("connected"), built
