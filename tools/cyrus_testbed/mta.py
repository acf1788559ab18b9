"""Mail handed to the MTA in front of Cyrus (Postfix, Exim), and waiting until it is in a
mailbox: the MTA's queue and log tell what went wrong when it never arrives."""

import time

import pytest

from .clients import TEST_FILES, imap_login, make_message, subjects_in
from .machine import DebianContainer

POSTFIX_REPORT = "postqueue -p; tail -n 20 /var/log/mail.log"


def send_through_the_mta_until_it_reaches_bob(
    machine: DebianContainer, password: str, mta: str, what_went_wrong: str
) -> None:
    """Hand a message to the MTA's sendmail and wait until bob's INBOX shows it."""
    subject = f"through {mta}"
    machine.write_file(f"{TEST_FILES}/{mta}.eml", make_message(subject))
    machine.check(f"/usr/sbin/sendmail -f sender@example.test bob < {TEST_FILES}/{mta}.eml")
    wait_until_bob_has(machine, password, subject, what_went_wrong)


def wait_until_bob_has(
    machine: DebianContainer, password: str, subject: str, what_went_wrong: str
) -> None:
    """Wait until bob's INBOX shows the subject; on a timeout, fail with what
    `what_went_wrong` prints (the MTA's queue and log)."""
    imap = imap_login(machine, "bob", password)
    deadline = time.monotonic() + 30
    while subject not in subjects_in(imap, "INBOX"):
        if time.monotonic() > deadline:
            report = machine.run(what_went_wrong).output
            pytest.fail(f"{subject!r} did not reach bob within 30 s:\n{report}")
        time.sleep(0.5)
    imap.logout()
