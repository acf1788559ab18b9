"""The harness cleans up after itself: what a killed run left on the engine goes at the
start of the next, and what a live run owns stays."""

import subprocess
import uuid

import pytest

from cyrus_deb.engine import OWNER_LABEL, owner_labels, remove_abandoned, run_to_completion
from cyrus_deb.images import base_image

pytestmark = pytest.mark.integration


def dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_containers_and_networks_of_a_killed_run_are_removed_and_a_live_runs_stay(
    docker_engine,
):
    image = base_image(docker_engine, "trixie")
    killed_run = {OWNER_LABEL: str(dead_pid())}
    left_behind = docker_engine.containers.run(
        image, ["sleep", "infinity"], detach=True, labels=killed_run
    )
    left_network = docker_engine.networks.create("cyrus-test-left-behind", labels=killed_run)
    ours = docker_engine.containers.run(
        image, ["sleep", "infinity"], detach=True, labels=owner_labels()
    )
    try:
        removed = remove_abandoned(docker_engine)
        assert set(removed) >= {left_behind.name, left_network.name}
        assert ours.name not in removed
        remaining = {c.name for c in docker_engine.containers.list(all=True)}
        assert left_behind.name not in remaining and ours.name in remaining
        assert left_network.name not in {n.name for n in docker_engine.networks.list()}
    finally:
        ours.remove(force=True)


def test_a_long_run_shows_each_line_while_it_is_still_running(docker_engine):
    """What autopkgtest prints (Cassandane, minutes of it) reaches the terminal as it comes,
    not when the run ends: here the run cannot end until its first line has been shown."""
    name = f"cyrus-test-echo-{uuid.uuid4().hex[:12]}"
    shown: list[str] = []

    def echo(line: str) -> None:
        shown.append(line)
        if line == "first":
            docker_engine.containers.get(name).exec_run(["touch", "/tmp/first-was-shown"])

    finished = run_to_completion(
        docker_engine,
        base_image(docker_engine, "trixie"),
        [
            "sh",
            "-c",
            "echo first; until [ -e /tmp/first-was-shown ]; do sleep 0.1; done; echo second",
        ],
        timeout_s=60,
        name=name,
        echo=echo,
    )
    assert finished.exit_code == 0, finished.output
    assert shown == ["first", "second"]
