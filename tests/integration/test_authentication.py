"""Who may log in: users of sasldb (the default) and system users through saslauthd and PAM."""

import imaplib
import poplib

import pytest

from cyrus_testbed.clients import imap_login, tls_context
from cyrus_testbed.server_config import reconfigured

pytestmark = pytest.mark.integration


def test_sasldb_user_logs_in_and_a_wrong_password_is_refused(server, behaviour):
    machine, password = server.machine, server.users.passwords["alice"]
    assert imap_login(machine, "alice", password).logout()[0] == "BYE"
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(machine, "alice", "not-the-password")
    behaviour("login checked against", "sasldb (/etc/sasldb2)")


def test_system_user_logs_in_through_saslauthd_and_pam(server, behaviour):
    machine, users = server.machine, server.users
    # sasl2-bin is preinstalled in the test image, where no init ran to start it.
    started = machine.service("start", "saslauthd")
    assert started.ok, started.output
    machine.check("useradd --no-create-home dave && echo 'dave:dave-secret' | chpasswd")
    machine.check("testsaslauthd -u dave -p dave-secret -s imap")
    admin = imap_login(machine, users.admin, users.admin_password)
    assert admin.create("user/dave")[0] == "OK"
    admin.logout()
    with reconfigured(machine, options={"sasl_pwcheck_method": "saslauthd"}):
        imap = imap_login(machine, "dave", "dave-secret")
        assert imap.select("INBOX")[0] == "OK"
        imap.logout()
        pop = poplib.POP3_SSL("127.0.0.1", machine.port(995), context=tls_context(), timeout=30)
        pop.user("dave")
        pop.pass_("dave-secret")
        assert pop.stat() == (0, 0)
        pop.quit()
        with pytest.raises(imaplib.IMAP4.error):
            imap_login(machine, "alice", users.passwords["alice"])  # in sasldb only
    behaviour("login with sasl_pwcheck_method: saslauthd", "PAM user in, sasldb user out")
