"""Mail coming in: LMTP over TCP, quotas, autocreate, sieve filing, and Postfix or Exim in
front."""

import re
import shlex

import pytest

from cyrus_testbed.clients import (
    TEST_FILES,
    imap_login,
    lmtp_deliver,
    make_message,
    provision_users,
    sieve_connect,
    subjects_in,
)
from cyrus_testbed.mta import (
    POSTFIX_REPORT,
    send_through_the_mta_until_it_reaches_bob,
    wait_until_bob_has,
)
from cyrus_testbed.readme_debian import README_DEBIAN, block_after, commands_after
from cyrus_testbed.server_config import reconfigured

pytestmark = pytest.mark.integration

LMTP_TCP = "127.0.0.1:24"
THREE_GIB_IN_KIB = 3 * 1024 * 1024


def set_quota(server, root: str, limits: str) -> None:
    admin = imap_login(server.machine, server.users.admin, server.users.admin_password)
    assert admin.setquota(root, limits)[0] == "OK"
    admin.logout()


def cyradm(machine, admin_password: str, commands: str) -> str:
    """Drive the packaged cyradm non-interactively: commands on its standard input."""
    machine.write_file(f"{TEST_FILES}/cyradm-commands", commands)
    return machine.check(
        f"cyradm --user cyrus --password {shlex.quote(admin_password)} localhost"
        f" < {TEST_FILES}/cyradm-commands 2>&1"
    )


def test_lmtp_over_tcp_refuses_a_client_that_has_not_authenticated(server, behaviour):
    replies = lmtp_deliver(server.machine, ["alice"], make_message("no auth"), address=LMTP_TCP)
    refusal = replies.first_refusal()
    behaviour("LMTP on 127.0.0.1:24 without AUTH", refusal.split()[0])
    # 430, not 530: upstream's soft_noauth, so a misconfigured MTA keeps the mail queued.
    assert refusal.startswith("430"), replies
    assert replies.data == {}


def test_lmtp_over_tcp_delivers_after_the_admin_authenticates_under_tls(server):
    users = server.users
    replies = lmtp_deliver(
        server.machine,
        ["alice"],
        make_message("over tcp with auth"),
        address=LMTP_TCP,
        auth=(users.admin, users.admin_password),
    )
    assert replies.session["auth"].startswith("235"), replies
    assert replies.delivered_to("alice"), replies
    imap = imap_login(server.machine, "alice", users.passwords["alice"])
    assert "over tcp with auth" in subjects_in(imap, "INBOX")
    imap.logout()


def test_cyradm_creates_a_mailbox_and_sets_a_3_gib_quota_the_user_sees(server, behaviour):
    """3 GiB is past the 2 GB that old Cyrus versions could hold in a quota."""
    machine, users = server.machine, server.users
    output = cyradm(
        machine,
        users.admin_password,
        f"cm user/alice/Archive\nsq user/alice {THREE_GIB_IN_KIB}\nlq user/alice\nlm user/alice*\n",
    )
    assert f"STORAGE 0/{THREE_GIB_IN_KIB}" in output, output
    assert "user/alice/Archive" in output, output

    imap = imap_login(machine, "alice", users.passwords["alice"])
    _, data = imap.getquotaroot("INBOX")
    imap.logout()
    quota = next(line for line in data[1] if line).decode()
    storage = re.search(r"STORAGE \d+ (\d+)", quota)
    assert storage, quota
    limit = int(storage[1])
    behaviour("quota of 3 GiB set with cyradm, as IMAP reports it (KiB)", str(limit))
    assert limit == THREE_GIB_IN_KIB


def test_over_quota_delivery_is_deferred_with_452_or_refused_with_552_when_permanent(
    server, behaviour
):
    machine = server.machine
    set_quota(server, "user/bob", "(STORAGE 1)")

    def big() -> bytes:  # a new Message-ID each time, or lmtpd drops it as a duplicate
        return make_message("too big for the quota", body="x" * 4096 + "\n")

    try:
        # lmtpd takes a message while the user is under quota (lmtp_strict_quota
        # is off), so the first one goes over and the second is turned away.
        assert lmtp_deliver(machine, ["bob"], big()).delivered_to("bob")
        deferred = lmtp_deliver(machine, ["bob"], big()).first_refusal()
        behaviour("LMTP to a user over quota", deferred.split()[0])
        assert deferred.startswith("452 4.2.2"), deferred
        with reconfigured(machine, options={"lmtp_over_quota_perm_failure": "yes"}):
            refused = lmtp_deliver(machine, ["bob"], big()).first_refusal()
        assert refused.startswith("552 5.2.2"), refused
    finally:
        set_quota(server, "user/bob", "()")


def test_autocreate_makes_the_inbox_at_first_delivery(server, behaviour):
    machine, users = server.machine, server.users
    with reconfigured(machine, options={"autocreate_quota": "0", "autocreate_post": "yes"}):
        replies = lmtp_deliver(machine, ["carol"], make_message("creates carol's inbox"))
    behaviour("LMTP to a new user with autocreate_post", replies.data["carol"].split()[0])
    assert replies.delivered_to("carol"), replies
    admin = imap_login(machine, users.admin, users.admin_password)
    _, listing = admin.list("user/", "carol")
    admin.logout()
    assert listing[0] and b"user/carol" in listing[0], listing


def test_sieve_script_uploaded_over_managesieve_files_a_delivery_into_its_folder(server, behaviour):
    """sieve-connect, because the packaged sieveshell cannot STARTTLS, and the default
    allowplaintext: no keeps passwords off clear channels (README.Debian, Sieve)."""
    machine, password = server.machine, server.users.passwords["alice"]
    machine.install(["sieve-connect"])
    imap = imap_login(machine, "alice", password)
    imap.create("Lists")
    machine.write_file(
        f"{TEST_FILES}/lists.sieve",
        'require ["fileinto"];\nif header :contains "Subject" "[list]" { fileinto "Lists"; }\n',
    )
    upload = f"--upload --localsieve {TEST_FILES}/lists.sieve --remotesieve lists"
    sieve_connect(machine, "alice", password, upload)
    sieve_connect(machine, "alice", password, "--activate --remotesieve lists")
    assert '"lists" ACTIVE' in sieve_connect(machine, "alice", password, "--list")

    lmtp_deliver(machine, ["alice"], make_message("[list] filed by sieve"))
    filed = "[list] filed by sieve" in subjects_in(imap, "Lists")
    behaviour(
        "sieve script uploaded over ManageSieve files an LMTP delivery", "yes" if filed else "no"
    )
    assert filed
    assert "[list] filed by sieve" not in subjects_in(imap, "INBOX")
    imap.logout()


def test_sieveshell_cannot_log_in_without_tls_as_readme_debian_warns(server):
    machine, password = server.machine, server.users.passwords["alice"]
    result = machine.run(f"sieveshell -u alice -a alice -p {password} -e list 127.0.0.1:4190 2>&1")
    assert result.exit_code != 0 and "unable to connect" in result.output, result.output
    assert (
        "sieveshell" in README_DEBIAN.read_text() and "sieve-connect" in README_DEBIAN.read_text()
    )


def postfix_set_up_as_readme_debian_says(machine) -> None:
    machine.install(["postfix"])
    for command in commands_after("For Postfix"):
        machine.check(f"{command} 2>&1")
    machine.check("postfix status 2>&1 || postfix start 2>&1")


@pytest.mark.slow
def test_postfix_delivers_through_the_lmtp_socket_set_up_as_readme_debian_says(server, behaviour):
    machine, password = server.machine, server.users.passwords["bob"]
    postfix_set_up_as_readme_debian_says(machine)
    send_through_the_mta_until_it_reaches_bob(machine, password, "postfix", POSTFIX_REPORT)
    behaviour("Postfix delivers through /run/cyrus/socket/lmtp", "yes")


@pytest.mark.slow
def test_sieve_redirect_on_delivery_reaches_another_mailbox_through_postfix(server, behaviour):
    """lmtpd hands a redirect to the MTA's sendmail, and Postfix's postdrop is setgid: the
    service's sandbox must let it gain that group (README.Debian, Security)."""
    machine, passwords = server.machine, server.users.passwords
    postfix_set_up_as_readme_debian_says(machine)
    machine.install(["sieve-connect"])
    machine.write_file(f"{TEST_FILES}/redirect.sieve", 'redirect "bob@localhost";\n')
    upload = f"--upload --localsieve {TEST_FILES}/redirect.sieve --remotesieve redirect"
    sieve_connect(machine, "alice", passwords["alice"], upload)
    sieve_connect(machine, "alice", passwords["alice"], "--activate --remotesieve redirect")
    try:
        subject = "redirected by sieve"
        replies = lmtp_deliver(machine, ["alice"], make_message(subject))
        assert replies.delivered_to("alice"), replies
        wait_until_bob_has(machine, passwords["bob"], subject, POSTFIX_REPORT)
    finally:
        sieve_connect(machine, "alice", passwords["alice"], "--deactivate")
    behaviour("Sieve redirect at delivery, through Postfix", "reaches the other mailbox")


EXIM_FILES = (
    "/etc/exim4/conf.d/router/450_local_cyrus_lmtp",
    "/etc/exim4/conf.d/transport/30_local_cyrus_lmtp",
)


@pytest.mark.slow
def test_exim_delivers_through_the_lmtp_socket_set_up_as_readme_debian_says(
    fresh_machine, behaviour
):
    machine = fresh_machine
    machine.install(["cyrus-imapd", "sasl2-bin", "ssl-cert", "exim4-daemon-light"])
    users = provision_users(machine, ("bob",))
    for command in commands_after("For Exim (exim4, Debian's default MTA)"):
        machine.check(f"{command} 2>&1")
    for path in EXIM_FILES:
        machine.write_file(path, block_after(f"{path}:"))
    for command in commands_after("then build the configuration and restart Exim:"):
        machine.check(f"{command} 2>&1")
    send_through_the_mta_until_it_reaches_bob(
        machine, users.passwords["bob"], "exim", "exim4 -bp; tail -n 20 /var/log/exim4/mainlog"
    )
    behaviour("Exim delivers through /run/cyrus/socket/lmtp", "yes")
