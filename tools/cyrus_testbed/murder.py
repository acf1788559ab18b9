"""A Murder as README.Debian ("Murder: one set of mailboxes over several back ends") sets it
up, step by step: a mupdate master, back ends and a front end, each a machine of a test's
private network under the names README.Debian uses."""

import json
import shlex
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker

from .boot import ImagesByTarget, Target, boot
from .clients import CyrusUsers, imap_login, provisioned_users
from .machine import DebianContainer, private_network
from .readme_debian import block_after, commands_after, imapd_conf_lines
from .server_config import LOCAL_FRAGMENT, set_options, wait_until_serving
from .server_image import SERVER_PACKAGES

MASTER = "mupdate.example.org"
BACK_ENDS = ("backend1.example.org", "backend2.example.org")
# README.Debian names no front end: this is the name its users connect to.
FRONT_END = "mail.example.org"
MUPDATE_PORT = 3905
SERVICES = "/etc/services"
# README.Debian's placeholders, and the passwords that stand for them.
ACCOUNT_PASSWORDS = {"mupdate": "mupdate-secret", "proxy": "proxy-secret", "xfer": "xfer-secret"}
PLACEHOLDERS = {f"{name.upper()}-PASSWORD": pw for name, pw in ACCOUNT_PASSWORDS.items()}
MURDER_PACKAGES = (*SERVER_PACKAGES, "cyrus-murder")
# The lines of README.Debian that its 99-local.conf blocks follow, by role.
FRAGMENT_AFTER = {
    "master": "and run mupdate as the master, in its",
    "back end": "LMTP from the front ends over the network (it asks them to log in), in",
    "front end": "that keeps the front end's copy of the list, in its",
}
# A bound, not a target: the front end's mupdate slave hears of a new mailbox within a
# second or so.
KNOWN_TIMEOUT_S = 60


@dataclass(frozen=True)
class Murder:
    """The machines, and the users who log in to the front end (their administrator is
    also each back end's)."""

    master: DebianContainer
    back_ends: dict[str, DebianContainer]
    front_end: DebianContainer
    users: CyrusUsers

    @property
    def machines(self) -> dict[str, DebianContainer]:
        """Every machine by name, for a failure report."""
        return {MASTER: self.master, **self.back_ends, FRONT_END: self.front_end}


@contextmanager
def booted_murder_machines(
    client: docker.DockerClient, images: ImagesByTarget, target: Target, packages_dir: Path
) -> Iterator[dict[str, DebianContainer]]:
    """The master, the back ends and the front end, booted and with cyrus-murder and the
    server packages installed (all at once: they mostly wait), on a network of their own;
    removed afterwards, whatever happened."""
    names = (MASTER, *BACK_ENDS, FRONT_END)
    image = images[target]  # made once, before the threads ask for it
    assert image
    with ExitStack() as cleanup, ThreadPoolExecutor(len(names)) as pool:
        machines: dict[str, DebianContainer] = {}

        def boot_and_install(name: str) -> None:
            machine = boot(images, target, packages_dir, hostname=name)
            machines[name] = machine
            machine.install(MURDER_PACKAGES)

        booting = [pool.submit(boot_and_install, name) for name in names]
        try:
            for future in booting:
                future.result()
        finally:
            for future in booting:
                future.exception()  # every boot has ended, so every machine is known
            for machine in machines.values():
                cleanup.callback(machine.stop)
        cleanup.enter_context(private_network(client, machines))
        yield {name: machines[name] for name in names}


def with_passwords(text: str) -> str:
    for placeholder, password in PLACEHOLDERS.items():
        text = text.replace(placeholder, password)
    return text


def add_account(machine: DebianContainer, name: str, password: str) -> None:
    """README.Debian's saslpasswd2 line, for the account `name`."""
    (command,) = commands_after("all of them (here the mupdate account, on the master):")
    assert command.startswith("saslpasswd2 -c ") and command.endswith(" mupdate"), command
    command = command.replace("-c ", "-p -c ", 1).removesuffix(" mupdate") + f" {name}"
    machine.check(f"echo {shlex.quote(password)} | {command}")


def configure(machine: DebianContainer, settings_after: str, fragment_after: str) -> None:
    """One role's imapd.conf lines and 99-local.conf, from README.Debian."""
    set_options(machine, imapd_conf_lines(with_passwords(block_after(settings_after))))
    machine.write_file(LOCAL_FRAGMENT, block_after(fragment_after))


def run_readme_commands(machine: DebianContainer, after: str) -> None:
    for command in commands_after(after):
        machine.check(f"{command} 2>&1")


def set_up_as_readme_debian_says(machines: Mapping[str, DebianContainer]) -> Murder:
    """README.Debian's steps: names, accounts, the master, the back ends, the front end;
    then the administrator and the users (alice, bob, carol) on the front end."""
    services = block_after("the master listen on below:")
    for name, machine in machines.items():
        machine.rewrite_file(SERVICES, machine.read_file(SERVICES) + services)
        set_options(machine, {"servername": name})
    master, front_end = machines[MASTER], machines[FRONT_END]
    back_ends = {name: machines[name] for name in BACK_ENDS}
    users = provisioned_users(["alice", "bob", "carol"])

    add_account(master, "mupdate", ACCOUNT_PASSWORDS["mupdate"])
    configure(master, "/etc/imapd.conf, the admins line becomes)", FRAGMENT_AFTER["master"])
    run_readme_commands(master, "then reload the master:")
    master.wait_for_tcp(MUPDATE_PORT)

    for back_end in back_ends.values():
        for account in ("proxy", "xfer"):
            add_account(back_end, account, ACCOUNT_PASSWORDS[account])
        add_account(back_end, users.admin, users.admin_password)
        configure(
            back_end,
            "line that is there), with the passwords of the mupdate and xfer accounts:",
            FRAGMENT_AFTER["back end"],
        )
        run_readme_commands(back_end, "then restart the back end:")
        wait_until_serving(back_end)

    for name, password in {users.admin: users.admin_password, **users.passwords}.items():
        add_account(front_end, name, password)
    configure(
        front_end,
        "of the mupdate and proxy accounts and the names of the back ends:",
        FRAGMENT_AFTER["front end"],
    )
    run_readme_commands(front_end, "then restart the front end:")
    wait_until_serving(front_end)
    front_end.wait_for_tcp(MUPDATE_PORT)
    return Murder(master, back_ends, front_end, users)


def create_mailbox_on(murder: Murder, back_end: str, mailbox: str) -> None:
    """As that back end's administrator, as README.Debian says ("cm user/alice"); then wait
    until the front end knows of it."""
    imap = imap_login(murder.back_ends[back_end], murder.users.admin, murder.users.admin_password)
    status, data = imap.create(mailbox)
    imap.logout()
    assert status == "OK", data
    wait_until_front_end_knows(murder, mailbox, back_end)


def list_entry(machine: DebianContainer, mailbox: str) -> dict[str, object]:
    """The machine's entry for the mailbox in its mailbox list ({} for none), as
    ctl_mboxlist dumps it (JSON, by internal name): server, partition, acl, ..."""
    dumped = machine.check("runuser -u cyrus -- /usr/lib/cyrus/bin/ctl_mboxlist -d")
    return json.loads(dumped).get(mailbox.replace("/", "."), {})


def location(murder: Murder, mailbox: str) -> str:
    """The back end that the front end's copy of the list names for the mailbox ("" for
    none)."""
    return str(list_entry(murder.front_end, mailbox).get("server") or "")


def wait_until_front_end_has(murder: Murder, mailbox: str, field: str, value: object) -> float:
    """How long until the front end's copy of the list gives the mailbox's `field` (its
    server, its acl) that value."""
    started = time.monotonic()
    while (found := list_entry(murder.front_end, mailbox).get(field)) != value:
        assert time.monotonic() - started < KNOWN_TIMEOUT_S, (
            f"the front end's list gives {mailbox} the {field} {found!r}, not {value!r},"
            f" after {KNOWN_TIMEOUT_S} s"
        )
        time.sleep(0.2)
    return time.monotonic() - started


def wait_until_front_end_knows(murder: Murder, mailbox: str, back_end: str) -> float:
    """How long until the front end's list places the mailbox on `back_end`."""
    return wait_until_front_end_has(murder, mailbox, "server", back_end)


def stored_on(back_end: DebianContainer, mailbox: str, text: str) -> bool:
    """Whether a message file of the mailbox on that back end's disk holds `text`."""
    path = f"$(runuser -u cyrus -- /usr/lib/cyrus/bin/mbpath {shlex.quote(mailbox)})"
    return back_end.run(f'grep -rqF {shlex.quote(text)} "{path}"').ok
