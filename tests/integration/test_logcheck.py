"""logcheck, with the rules cyrus-common ships, stays quiet about a normal day of Cyrus and
still reports what an administrator must see."""

import imaplib
import poplib

import pytest

from cyrus_testbed.clients import (
    TEST_FILES,
    examine,
    fetched_message,
    imap_login,
    imaps_connect,
    lmtp_deliver,
    make_message,
    provision_users,
    sieve_connect,
    tls_context,
)
from cyrus_testbed.server_config import restart

pytestmark = pytest.mark.integration

RULES = "/etc/logcheck/ignore.d.server/cyrus-common"
LOG_COPY = f"{TEST_FILES}/cyrus.log"
SIEVE_SCRIPT = 'require ["fileinto"];\nif header :contains "Subject" "list" { fileinto "Lists"; }\n'


def a_normal_day(machine, users) -> None:
    """What every site's Cyrus does: mail in over LMTP, read over IMAP (STARTTLS and 993)
    and POP3 (STLS), filed by a Sieve script, a restart, and the nightly job."""
    alice, bob = users.passwords["alice"], users.passwords["bob"]
    machine.write_file(f"{TEST_FILES}/lists.sieve", SIEVE_SCRIPT)
    upload = f"--upload --localsieve {TEST_FILES}/lists.sieve --remotesieve lists"
    sieve_connect(machine, "alice", alice, upload)
    sieve_connect(machine, "alice", alice, "--activate --remotesieve lists")
    imap = imap_login(machine, "alice", alice)
    assert imap.create("Lists")[0] == "OK"
    imap.logout()
    for subject in ("hello", "list digest"):
        assert lmtp_deliver(machine, ["alice", "bob"], make_message(subject)).delivered_to("bob")

    imap = imaps_connect(machine)
    imap.login("alice", alice)
    assert examine(imap, "Lists") == 1
    imap.select("INBOX")
    fetched_message(imap, "1")
    imap.store("1", "+FLAGS", "\\Deleted")
    imap.expunge()
    imap.logout()

    pop = poplib.POP3("127.0.0.1", machine.port(110), timeout=30)
    pop.stls(tls_context())
    pop.user("bob")
    pop.pass_(bob)
    pop.retr(1)
    pop.dele(1)
    pop.quit()

    restart(machine)
    machine.init.run_daily_job(machine)


def lines_logcheck_reports(machine, log: str) -> list[str]:
    """The lines of `log` that logcheck would mail to the administrator, as its own
    logcheck-test finds them with our rules."""
    machine.write_file(LOG_COPY, log)
    unmatched = machine.run(f"logcheck-test -q -i -l {LOG_COPY} -r {RULES}")
    assert unmatched.exit_code in (0, 1), unmatched.output
    return [line for line in unmatched.output.splitlines() if line.strip()]


def test_logcheck_reports_nothing_of_a_normal_day_and_reports_a_failed_login(fresh_machine):
    machine = fresh_machine
    machine.install(["cyrus-imapd", "cyrus-pop3d", "sasl2-bin", "sieve-connect", "logcheck"])
    users = provision_users(machine)
    a_normal_day(machine, users)

    normal = machine.cyrus_log()
    assert "cyrus/lmtpunix" in normal and "cyrus/ctl_cyrusdb" in normal, normal
    assert lines_logcheck_reports(machine, normal) == []

    refused = imap_login_refused(machine, "alice", "not-her-password")
    assert refused
    reported = lines_logcheck_reports(machine, machine.cyrus_log())
    assert reported and all("badlogin" in line for line in reported), reported


def imap_login_refused(machine, user: str, password: str) -> bool:
    imap = imaps_connect(machine)
    try:
        imap.login(user, password)
    except imaplib.IMAP4.error:
        return True
    finally:
        imap.shutdown()
    return False
