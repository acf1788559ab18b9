"""A Murder of four machines, set up only as README.Debian ("Murder: one set of mailboxes
over several back ends") tells: a mupdate master, two back ends and a front end, from our
packages, on a private network of their own. Users of either back end get their mail
through the front end over LMTP, IMAP and POP3; a shared folder on one back end is open to
a user of the other; XFER moves a mailbox between the back ends under a connected client.
On both init systems: master runs mupdate, the proxies and the start-up push, and each init
starts and reloads it its own way."""

import imaplib
import poplib
import time
from collections.abc import Iterator

import pytest

from cyrus_testbed.clients import (
    examine,
    fetched_message,
    imap_login,
    lmtp_deliver,
    lmtp_deliver_each,
    make_message,
    subjects_in,
    tls_context,
)
from cyrus_testbed.fingerprint import fingerprint, mailbox_names
from cyrus_testbed.murder import (
    BACK_ENDS,
    FRONT_END,
    MASTER,
    Murder,
    booted_murder_machines,
    create_mailbox_on,
    list_entry,
    location,
    set_up_as_readme_debian_says,
    stored_on,
    wait_until_front_end_has,
    wait_until_front_end_knows,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

FIRST, SECOND = BACK_ENDS
HOMES = {"alice": FIRST, "bob": SECOND, "carol": FIRST}
XFER_MESSAGES = 1000


@pytest.fixture(scope="module")
def murder(docker_engine, images, target, packages_dir) -> Iterator[Murder]:
    """The Murder, and each user's mailbox made on its back end."""
    with booted_murder_machines(docker_engine, images, target, packages_dir) as machines:
        murder = set_up_as_readme_debian_says(machines)
        for user, back_end in HOMES.items():
            create_mailbox_on(murder, back_end, f"user/{user}")
        yield murder


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_a_user_of_either_back_end_gets_mail_through_the_front_end_over_lmtp_imap_and_pop3(
    murder, user, figures
):
    password = murder.users.passwords[user]
    home = HOMES[user]
    subject = f"for {user}, through the front end"
    replies = lmtp_deliver(murder.front_end, [user], make_message(subject))
    assert replies.delivered_to(user), replies

    # lmtpproxyd put it on the user's back end, and there alone.
    stored = {name: stored_on(m, f"user/{user}", subject) for name, m in murder.back_ends.items()}
    assert stored == {name: name == home for name in BACK_ENDS}, stored

    imap = imap_login(murder.front_end, user, password)
    assert subject in subjects_in(imap, "INBOX"), "IMAP through the front end"
    imap.logout()

    pop = poplib.POP3("127.0.0.1", murder.front_end.port(110), timeout=30)
    pop.stls(tls_context())
    pop.user(user)
    pop.pass_(password)
    count, _ = pop.stat()
    _, lines, _ = pop.retr(count)
    pop.quit()
    assert f"Subject: {subject}".encode() in lines, "POP3 through the front end"
    figures(user=user, back_end=home, delivered=1)


def test_a_shared_folder_on_one_back_end_is_open_to_a_user_of_the_other(murder, figures):
    owner_back_end, reader = FIRST, "bob"
    assert HOMES[reader] != owner_back_end
    create_mailbox_on(murder, owner_back_end, "team")
    admin = imap_login(
        murder.back_ends[owner_back_end], murder.users.admin, murder.users.admin_password
    )
    # Only what is given here: no "anyone" right from defaultacl.
    assert admin.deleteacl("team", "anyone")[0] == "OK"
    for who, rights in ((reader, "lrs"), (murder.users.admin, "lrsip")):
        assert admin.setacl("team", who, rights)[0] == "OK", who
    assert admin.append("team", None, None, make_message("team news"))[0] == "OK"
    admin.logout()

    # The ACL reaches the front end's copy of the list through the master; until then the
    # front end lists the folder by the ACL it was made with.
    acl = list_entry(murder.back_ends[owner_back_end], "team")["acl"]
    assert acl == {reader: "lrs", murder.users.admin: "lrsip"}, acl
    acl_after = wait_until_front_end_has(murder, "team", "acl", acl)

    # Users see the folder under the name their namespace gives it ("Shared Folders/team").
    imap = imap_login(murder.front_end, reader, murder.users.passwords[reader])
    listed = [name for name in mailbox_names(imap, "list") if name.endswith("/team")]
    assert listed, "team is not listed for bob through the front end"
    assert subjects_in(imap, f'"{listed[0]}"') == ["team news"], listed
    imap.logout()
    # The control: a user the ACL does not name, on the folder's own back end, sees nothing.
    outsider = imap_login(murder.front_end, "carol", murder.users.passwords["carol"])
    assert not [name for name in mailbox_names(outsider, "list") if name.endswith("/team")]
    outsider.logout()
    figures(
        owner_back_end=owner_back_end,
        reader_back_end=HOMES[reader],
        acl_on_front_end_after_s=round(acl_after, 2),
    )


def test_xfer_moves_a_user_of_1000_messages_and_the_user_finds_the_same_mail_after_it(
    murder, figures, behaviour
):
    """The user stays logged in through the front end during the move: the front end ends
    that session when the move is over (its back end session is gone), and the user logs in
    again to the same mailboxes, now on the other back end."""
    user, source, destination = "carol", HOMES["carol"], SECOND
    password = {user: murder.users.passwords[user]}
    messages = [make_message(f"message {n} before the move") for n in range(XFER_MESSAGES)]
    for replies in lmtp_deliver_each(murder.front_end, [user], messages):
        assert replies.delivered_to(user), replies
    connected = imap_login(murder.front_end, user, password[user])
    # A folder of the user's own: altnamespace (the default) shows it beside INBOX.
    assert connected.create("Projects")[0] == "OK"
    connected.select("INBOX")
    assert connected.store("1:25", "+FLAGS", "(\\Flagged)")[0] == "OK"
    before = fingerprint(murder.front_end, password, sieve=False)
    assert before.message_count == XFER_MESSAGES

    # On the back end that holds the user, as its administrator (README.Debian).
    admin = imap_login(murder.back_ends[source], murder.users.admin, murder.users.admin_password)
    started = time.monotonic()
    status, data = admin.xatom("XFER", f"user/{user}", destination)
    xfer_s = time.monotonic() - started
    admin.logout()
    assert status == "OK", data
    known_after_s = wait_until_front_end_knows(murder, f"user/{user}", destination)
    assert location(murder, f"user/{user}/Projects") == destination
    stored = {
        name: stored_on(m, f"user/{user}", "message 999 ") for name, m in murder.back_ends.items()
    }

    try:
        session = f"went on: NOOP {connected.noop()[0]}"
    except imaplib.IMAP4.abort as ended:
        # imaplib heads the server's BYE with the command it was answering.
        session = f"ended by the front end: {str(ended).split(' => ', 1)[-1]}"
    behaviour("a session open through the front end during XFER of its user", session)
    after = fingerprint(murder.front_end, password, sieve=False)
    differences = before.differences(after)
    again = imap_login(murder.front_end, user, password[user])
    count = examine(again, "INBOX")
    flagged = again.search(None, "FLAGGED")[1][0].split()
    last = fetched_message(again, str(count))
    again.logout()
    figures(
        messages=before.message_count,
        mailboxes=before.mailbox_count,
        xfer_s=round(xfer_s, 2),
        front_end_knew_after_s=round(known_after_s, 2),
        differences=len(differences),
        open_session=session,
    )
    assert differences == [], "\n".join(differences[:40])
    assert stored == {source: False, destination: True}, stored
    assert session.startswith("went on") or "Lost connection" in session, session
    assert count == XFER_MESSAGES and len(flagged) == 25
    assert b"message 999 before the move" in last


def test_the_machines_log_in_to_each_other_over_tls_with_their_accounts(murder, figures):
    """mupdate logins on the master (from the back ends and the front end) and the front
    end's proxy logins on the back ends: every one inside TLS, none without."""
    master_logins = [line for line in murder.master.cyrus_log().splitlines() if "login: " in line]
    assert master_logins, "the master logged no login"
    assert all("mupdate PLAIN+TLS" in line for line in master_logins), master_logins
    for host in (*BACK_ENDS, FRONT_END):
        assert any(host in line for line in master_logins), (host, master_logins)
    for name, back_end in murder.back_ends.items():
        logins = [line for line in back_end.cyrus_log().splitlines() if " login: " in line]
        proxied = [line for line in logins if FRONT_END in line]
        assert proxied, (name, logins)
        assert all("+TLS" in line for line in proxied), proxied
    # README.Debian: no Cyrus program checks the certificate of the server it connects to.
    # Cyrus notices the snakeoil certificate is self-signed, and logs in all the same.
    assert "verify error:num=18:self-signed certificate" in murder.front_end.cyrus_log()
    figures(master_logins=len(master_logins), master=MASTER)
