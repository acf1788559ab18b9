"""A machine that installed the server packages and provisioned its users, kept as an image.

Most tests need a running server, not its installation: they boot this image, as a host
with Cyrus installed boots, instead of installing again (the tests of the installation
itself start from a machine without our packages). The image is made once per build of
the packages: its tag changes with the packages, the image beneath and this code.
"""

import time
from pathlib import Path

import docker

from cyrus_deb.images import content_digest, image_exists
from cyrus_deb.paths import made_once
from cyrus_deb.progress import phase

from .clients import CyrusUsers, provision_users, provisioned_users
from .machine import DebianContainer, image_for_tests

SERVER_PACKAGES = (
    "cyrus-imapd",
    "cyrus-pop3d",
    "cyrus-admin",
    "cyrus-clients",
    "sasl2-bin",
    "ssl-cert",
)
SERVER_USERS = ("alice", "bob")
# The machines made from the image keep the name it was installed under, as a host does:
# ssl-cert's snakeoil certificate, made at the installation, names it.
SERVER_HOSTNAME = "mail"
MADE_AT_LABEL = "cyrus-deb.made-at"
KEEP_RECENT_S = 6 * 3600
# How the image is made: a change here makes a new one.
RECIPE_SOURCES = ("server_image.py", "clients.py", "machine.py", "init_systems.py")


def server_users() -> CyrusUsers:
    """The users every server image holds."""
    return provisioned_users(SERVER_USERS)


def install_server(machine: DebianContainer) -> CyrusUsers:
    """Install the server packages on a booted machine and provision its users."""
    machine.install(SERVER_PACKAGES)
    return provision_users(machine, SERVER_USERS)


def server_image(client: docker.DockerClient, distribution: str, init: str, repo: Path) -> str:
    """The tag of the image of a machine with the server installed; made when missing."""
    parent = image_for_tests(client, distribution, init, repo)
    here = Path(__file__).parent
    key = content_digest(
        str(client.images.get(parent).id),
        (repo / "Packages").read_bytes(),
        *((here / name).read_bytes() for name in RECIPE_SOURCES),
    )
    repository = f"cyrus-deb/server-{init}-{distribution}"
    tag = f"{repository}:{key}"
    made_once(
        tag,
        lambda: image_exists(client, tag),
        lambda: _make(client, parent, init, repo, repository, key),
    )
    # Images of earlier builds go, but not one made lately: another run on this machine,
    # from another checkout, may be booting it.
    for image in client.images.list(name=repository):
        made_at = int(image.labels.get(MADE_AT_LABEL, "0"))
        if tag not in image.tags and time.time() - made_at > KEEP_RECENT_S:
            client.images.remove(str(image.id), force=True)
    return tag


def _make(
    client: docker.DockerClient, parent: str, init: str, repo: Path, repository: str, key: str
) -> None:
    with phase(f"making the image of an installed server ({init})"):
        machine = DebianContainer(parent, init, repo, hostname=SERVER_HOSTNAME).start()
        try:
            install_server(machine)
            stopped = machine.service("stop")
            assert stopped.ok, stopped.output
            machine.check(machine.init.forget_logs_command())
            stamp = f"LABEL {MADE_AT_LABEL}={int(time.time())}"
            machine.get_wrapped_container().commit(repository, key, changes=[stamp])
        finally:
            machine.stop()
