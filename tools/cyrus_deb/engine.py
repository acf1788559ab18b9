"""Reach the Docker engine, starting Debian's dockerd when it is installed but not running."""

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException
from docker.models.containers import Container

from .errors import UserError
from .progress import say

DOCKERD_LOG = Path("/var/log/cyrus-deb-dockerd.log")
START_TIMEOUT_S = 60


def _ping() -> docker.DockerClient | None:
    try:
        client = docker.from_env(version="auto")
        client.ping()
    except DockerException:
        return None
    return client


def docker_client() -> docker.DockerClient:
    """A client for a running engine; starts dockerd when needed and possible."""
    client = _ping()
    if client is not None:
        return client
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise UserError(
            "No Docker engine is running and none is installed.\n"
            "Install Debian's engine as root:  apt-get install docker.io"
        )
    say(f"starting the Docker engine ({dockerd}), log in {DOCKERD_LOG}")
    try:
        log = DOCKERD_LOG.open("ab")
    except PermissionError as error:
        raise UserError(
            "The Docker engine is installed but not running, and starting it needs root.\n"
            "Start it as root (systemctl start docker, or dockerd &) and try again."
        ) from error
    subprocess.Popen([dockerd], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        client = _ping()
        if client is not None:
            return client
        time.sleep(0.5)
    raise UserError(f"dockerd did not answer within {START_TIMEOUT_S} s; its log is {DOCKERD_LOG}.")


# Every container and network of ours carries the pid of the process that made it, so
# that a later run can remove what a killed one left behind: testcontainers' reaper,
# Ryuk, would do it, but its image cannot be pulled here.
OWNER_LABEL = "cyrus-deb.owner-pid"


def owner_labels() -> dict[str, str]:
    return {OWNER_LABEL: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and someone else's
        return True
    return True


def remove_abandoned(client: docker.DockerClient) -> list[str]:
    """Remove the containers, then the networks, whose making process is gone; their names."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        if not _alive(int(container.labels[OWNER_LABEL])):
            container.remove(force=True, v=True)
            removed.append(str(container.name))
    for network in client.networks.list(filters={"label": OWNER_LABEL}):
        if not _alive(int(network.attrs["Labels"][OWNER_LABEL])):
            network.remove()
            removed.append(str(network.name))
    return removed


@dataclass(frozen=True)
class Finished:
    exit_code: int
    output: str


def run_to_completion(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    *,
    timeout_s: int,
    echo: Callable[[str], None] | None = None,
    **options: Any,
) -> Finished:
    """Run a container of ours until its command ends, then remove it; what it printed.
    `echo` gets each line of that output as it comes, for a person watching a long run."""
    container = client.containers.run(image, command, detach=True, labels=owner_labels(), **options)
    try:
        echoing = None
        if echo is not None:
            echoing = threading.Thread(target=_echo_lines, args=(container, echo), daemon=True)
            echoing.start()
        exit_code = container.wait(timeout=timeout_s)["StatusCode"]
        if echoing is not None:
            echoing.join(timeout=30)  # the last lines, still on their way
        return Finished(exit_code, container.logs().decode(errors="replace"))
    finally:
        container.remove(force=True)


def _echo_lines(container: Container, echo: Callable[[str], None]) -> None:
    pending = b""
    for chunk in container.logs(stream=True, follow=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            echo(line.decode(errors="replace"))
    if pending:
        echo(pending.decode(errors="replace"))
