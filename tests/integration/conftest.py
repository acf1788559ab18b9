"""Containers for the integration tests: one booted Debian system per (distribution, init).

Lifecycle lives here; assertions live in the tests. Every container is
removed when its scope ends, whether the tests passed, failed or were
interrupted.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from cyrus_deb.containers import DebianContainer, test_image
from cyrus_deb.engine import docker_client
from cyrus_deb.images import INIT_SYSTEMS

from .clients import CyrusUsers, provision_users

DISTRIBUTION = "trixie"
SERVER_PACKAGES = ("cyrus-imapd", "cyrus-pop3d", "cyrus-admin", "cyrus-clients", "sasl2-bin")


@dataclass(frozen=True)
class Target:
    distribution: str
    init: str

    def __str__(self) -> str:
        return f"{self.distribution}-{self.init}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--init",
        action="append",
        choices=INIT_SYSTEMS,
        help="run the container tests on this init system only (repeatable)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        inits = metafunc.config.getoption("--init") or INIT_SYSTEMS
        targets = [Target(DISTRIBUTION, init) for init in inits]
        metafunc.parametrize("target", targets, ids=str, scope="module")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On failure, attach what a person looks at first: status, init log, Cyrus's lines."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            machine = getattr(value, "machine", value)
            if isinstance(machine, DebianContainer):
                try:
                    report.sections.append(("container logs", machine.logs_for_humans()))
                except Exception as error:  # the container may be gone already
                    report.sections.append(("container logs", f"unavailable: {error}"))


@pytest.fixture(scope="session")
def docker_engine() -> docker.DockerClient:
    return docker_client()


@pytest.fixture(scope="session")
def images(docker_engine, packages_dir) -> dict[Target, str]:
    """Test images, built once per session for each target asked for."""
    cache: dict[Target, str] = {}

    class Images(dict):
        def __missing__(self, target: Target) -> str:
            cache[target] = test_image(
                docker_engine, target.distribution, target.init, packages_dir
            )
            return cache[target]

    return Images()


def boot(images, target: Target, packages_dir) -> DebianContainer:
    return DebianContainer(images[target], target.init, packages_dir).start()


@pytest.fixture
def fresh_machine(images, target, packages_dir) -> Iterator[DebianContainer]:
    """A booted system with nothing of ours installed, for tests that change it."""
    machine = boot(images, target, packages_dir)
    try:
        yield machine
    finally:
        machine.stop()


@dataclass(frozen=True)
class CyrusServer:
    """A booted system with the server packages installed and users provisioned."""

    machine: DebianContainer
    users: CyrusUsers


@pytest.fixture(scope="module")
def server(images, target, packages_dir) -> Iterator[CyrusServer]:
    machine = boot(images, target, packages_dir)
    try:
        machine.install([*SERVER_PACKAGES, "ssl-cert"])
        users = provision_users(machine)
        yield CyrusServer(machine, users)
    finally:
        machine.stop()
