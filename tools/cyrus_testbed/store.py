"""A populated store to upgrade, made through the protocols, and our version.

Three users, each with an INBOX of LMTP deliveries of varied MIME structure
(generated with a fixed seed), messages to everyone in one transaction, a
Work folder filled over IMAP with flags, shared with the next user, an
annotation, a quota, two Sieve scripts (one active, filing "[list]" mail
into Work); and a shared folder with its own ACL and annotation.
"""

from .clients import (
    CyrusUsers,
    hierarchy_separator,
    imap_login,
    lmtp_deliver,
    lmtp_deliver_each,
    make_message,
    sieve_connect,
)
from .corpus import varied_messages
from .debian_control import package_version
from .fingerprint import set_metadata
from .machine import DebianContainer

OUR_VERSION = package_version()
USERS = ("alice", "bob", "carol")
SEED = 20261125
MESSAGES_PER_USER = 90
TO_EVERYONE = 10
FILED = 5
SHARED = 20
SHARED_FOLDER = "Announcements"
# What each user's fingerprint holds: their INBOX, their Work, the previous
# user's Work (ACL), the shared folder.
MESSAGES_SEEN = len(USERS) * (MESSAGES_PER_USER + TO_EVERYONE + 2 * FILED + SHARED)
# Debian's own packages and ours both need sieve-connect to talk ManageSieve here.
CLIENT_PACKAGES = ["sieve-connect"]


def _filters(work: str) -> str:
    rule = f'if header :contains "Subject" "[list]" {{ fileinto "{work}"; }}'
    return f'require ["fileinto"];\n{rule}\n'


DRAFT_SCRIPT = 'require ["vacation"];\nvacation :days 7 "Away until Monday.";\n'


def populate(
    machine: DebianContainer, users: CyrusUsers, *, annotate_shared_folder: bool = True
) -> None:
    """The store every upgrade starts from. Debian 12's 3.6.1 dies on SETMETADATA on a
    folder outside every user's namespace (assertion user_isnamespacelocked): its store
    is made without that one annotation."""
    names = list(users.passwords)
    admin = imap_login(machine, users.admin, users.admin_password)
    separator = hierarchy_separator(admin)
    for number, user in enumerate(names):
        assert admin.setquota(f"user{separator}{user}", f"(STORAGE {100000 + number})")[0] == "OK"
    assert admin.create(SHARED_FOLDER)[0] == "OK"
    # An admin may administer any mailbox, not write into it: it grants itself the right.
    owners = {users.admin: "lrswipkxtecda"}
    for user, rights in {**owners, **dict(zip(names, ("lrswi", "lrs", "lr"), strict=True))}.items():
        status, data = admin.setacl(SHARED_FOLDER, user, rights)
        assert status == "OK", data
    for message in varied_messages(SEED, SHARED, "everyone", tag="shared "):
        status, data = admin.append(SHARED_FOLDER, None, None, message)
        assert status == "OK", data
    if annotate_shared_folder:
        set_metadata(admin, SHARED_FOLDER, "/shared/comment", "read by all")
    admin.logout()

    for user in names:
        for replies in lmtp_deliver_each(
            machine, [user], varied_messages(SEED, MESSAGES_PER_USER, user)
        ):
            assert replies.delivered_to(user), replies
    for replies in lmtp_deliver_each(
        machine, names, varied_messages(SEED, TO_EVERYONE, "everyone", tag="all ")
    ):
        assert all(replies.delivered_to(user) for user in names), replies

    for number, user in enumerate(names):
        password = users.passwords[user]
        imap = imap_login(machine, user, password)
        work = f"INBOX{hierarchy_separator(imap)}Work"
        assert imap.create(work)[0] == "OK"
        assert imap.subscribe(work)[0] == "OK"
        for message in varied_messages(SEED, FILED, user, tag="filed "):
            assert imap.append(work, "(\\Flagged)", None, message)[0] == "OK"
        assert imap.setacl(work, names[(number + 1) % len(names)], "lrs")[0] == "OK"
        set_metadata(imap, work, "/private/comment", f"{user} work")
        imap.select("INBOX")
        imap.store("1:10", "+FLAGS", "(\\Seen)")
        imap.store("5:7", "+FLAGS", "(\\Answered $Label1)")
        imap.logout()
        _upload_sieve(machine, user, password, {"filters": _filters(work), "draft": DRAFT_SCRIPT})
        sieve_connect(machine, user, password, "--activate --remotesieve filters")


def _upload_sieve(machine: DebianContainer, user: str, password: str, scripts: dict) -> None:
    directory = f"/var/tmp/sieve-{user}"
    machine.write_files(directory, {f"{name}.sieve": text for name, text in scripts.items()})
    for name in scripts:
        sieve_connect(
            machine,
            user,
            password,
            f"--upload --localsieve {directory}/{name}.sieve --remotesieve {name}",
        )


def assert_a_new_delivery_is_served(machine: DebianContainer, users: CyrusUsers) -> None:
    """After an upgrade, the store still takes and serves new mail, and the active Sieve
    script still files mailing-list mail into Work."""
    for subject in ("first message after the upgrade", "[list] first after the upgrade"):
        assert lmtp_deliver(machine, ["alice"], make_message(subject)).delivered_to("alice")
    imap = imap_login(machine, "alice", users.passwords["alice"])
    work = f"INBOX{hierarchy_separator(imap)}Work"
    for mailbox, subject in (("INBOX", "first message"), (work, "[list] first")):
        imap.select(mailbox, readonly=True)
        found = imap.search(None, "SUBJECT", f'"{subject}"')[1][0].split()
        assert len(found) == 1, (mailbox, subject, found)
    imap.logout()
