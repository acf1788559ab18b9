"""Boot Debian containers with a real init, install the locally built packages, read their logs.

How a machine is run, booted and driven depends on its init system; init_systems.py
holds every such difference, so nothing here branches on it.
"""

import functools
import shlex
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import docker
import testinfra
from debian.deb822 import Packages
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import ExecWaitStrategy

from cyrus_deb.engine import owner_labels
from cyrus_deb.images import APT_INSTALL, Recipe, ensure_image, flavour_image

from .disks import STATE_TREES, Ext4Disk, FsckVerdict
from .init_systems import Result, init_system

# Ryuk, testcontainers' reaper, is an image that cannot be pulled here; the
# fixtures remove their containers themselves.
testcontainers_config.ryuk_disabled = True

REPO_MOUNT = "/srv/cyrus-repo"
LOCAL_SOURCE = "/etc/apt/sources.list.d/cyrus-local.list"
BOOT_TIMEOUT_S = 60
WAIT_TIMEOUT_S = 30
PUBLISHED_PORTS = (24, 110, 143, 993, 995, 4190, 8008, 8443)


def _listen_probe(port: int) -> str:
    return f"ss -Hltn 'sport = :{port}' | grep -q LISTEN"


def _probe_strategy(probe: str, timeout_s: float) -> ExecWaitStrategy:
    """testcontainers' wait for a shell command to succeed in the container, tried every
    0.2 s: most waits here are for a service that is up within a second or two."""
    strategy = ExecWaitStrategy(["sh", "-c", probe])
    return strategy.with_startup_timeout(timedelta(seconds=timeout_s)).with_poll_interval(0.2)


class CommandFailed(AssertionError):
    """A command in the container exited non-zero; carries what it printed."""


# ssl-cert's postinst makes the snakeoil pair for the host name it runs under: in an image
# it would name the machine the image was built on, not the ones booted from it.
MADE_FOR_THE_HOST = {"ssl-cert"}


def runtime_dependencies(repo: Path) -> list[str]:
    """Archive packages our .debs depend on (first alternative), without our own and
    without those whose installation is made for the host it runs on."""
    ours, wanted = set(), set()
    with (repo / "Packages").open() as handle:
        for stanza in Packages.iter_paragraphs(handle, use_apt_pkg=False):
            ours.add(stanza["Package"])
            for alternatives in stanza.relations["depends"] or ():
                wanted.add(alternatives[0]["name"])
    return sorted(wanted - ours - MADE_FOR_THE_HOST)


def image_for_tests(client: docker.DockerClient, distribution: str, init: str, repo: Path) -> str:
    """The init flavour with our packages' dependencies preinstalled, so tests install fast."""
    parent = flavour_image(client, distribution, init)
    # python3 runs the tests' LMTP client inside the container; cron is on every Debian
    # host (priority important) and runs Cyrus's daily job without systemd.
    packages = " ".join([*runtime_dependencies(repo), "python3", "cron"])
    body = f"RUN {APT_INSTALL} {packages} && apt-get clean\n"
    return ensure_image(client, Recipe(f"test-{init}-{distribution}", parent, body))


class DebianContainer(DockerContainer):
    """A booted Debian system: PID 1 is systemd or sysvinit's init."""

    def __init__(
        self,
        image: str,
        init: str,
        repo: Path,
        *,
        ipv6_loopback: bool = False,
        state_disk: Ext4Disk | None = None,
        state_on_volumes: bool = False,
        hostname: str | None = None,
    ) -> None:
        """`state_disk`: Cyrus's state on an ext4 image of its own. `state_on_volumes`: on
        volumes that start as a copy of the image's state trees, for an image that holds
        them: in its layers, they would be on overlayfs, which refuses to rename a directory
        of a lower layer (EXDEV), as Cyrus does when it rotates its database backups."""
        super().__init__(image)
        self.repo, self.state_disk = repo, state_disk
        for host_directory, path in (state_disk.binds() if state_disk else {}).items():
            self.with_volume_mapping(str(host_directory), path, "rw")
        self.init = init_system(init)
        settings = self.init.host_settings(ipv6_loopback=ipv6_loopback)
        self.with_volume_mapping(str(repo), REPO_MOUNT, "ro")
        for port in PUBLISHED_PORTS:
            # A random host port on loopback only: nothing else is ever a target.
            # (with_bind_ports cannot say "any port, on one address": set it directly.)
            self.ports[f"{port}/tcp"] = ("127.0.0.1", None)  # type: ignore[assignment]
        for path in settings.tmpfs:
            self.with_tmpfs_mount(path)
        volumes = [
            docker.types.Mount(path, None, type="volume")
            for path in (STATE_TREES.values() if state_on_volumes else ())
        ]
        self.with_kwargs(
            **settings.docker_kwargs(),
            **({"hostname": hostname} if hostname else {}),
            mounts=volumes,
            labels=owner_labels(),
            **self.init.run_options(),
        )

    @functools.cached_property
    def host(self) -> testinfra.host.Host:
        """testinfra's view of the machine, through docker exec: its files, packages,
        processes, sockets, users and services."""
        return testinfra.get_host(f"docker://{self.get_wrapped_container().id}")

    def tcp_listeners(self) -> set[str]:
        """Every listening TCP address, as ADDRESS:PORT with IPv6 addresses in brackets."""
        listeners = set()
        for socket_spec in self.host.socket.get_listening_sockets():
            protocol, _, address = socket_spec.partition("://")
            if protocol == "tcp":
                host, port = address.rsplit(":", 1)
                listeners.add(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return listeners

    def port(self, container_port: int) -> int:
        """The loopback port on the host that reaches container_port."""
        return int(self.get_exposed_port(container_port))

    def start(self) -> "DebianContainer":
        """Create and boot the machine; it is removed again if it does not boot."""
        super().start()
        try:
            self.wait_booted()
        except Exception:
            self.stop()
            raise
        return self

    def reboot(self) -> None:
        """Stop and start the container: init runs again on an empty /run."""
        self.get_wrapped_container().restart(timeout=30)
        self.wait_booted()

    def power_cut(self) -> None:
        """Every process of the machine SIGKILLed at once. With a state disk, its file system
        stops at the same moment without flushing its journal, after the rig's own unsynced
        write (the negative control): what was never synced is lost, as in a power loss.
        Without one, the host's page cache keeps every write: a process crash, not a power
        loss."""
        container = self.get_wrapped_container()
        if self.state_disk:
            self.state_disk.write_canary()
            self.state_disk.shut_down()
        container.kill(signal="SIGKILL")
        container.wait(timeout=30)

    def power_on(self) -> FsckVerdict | None:
        """Boot the machine again after a power cut. A state disk is first checked with
        `e2fsck -p` and mounted again, as a booting host does; its verdict is returned."""
        verdict = None
        if self.state_disk:
            self.state_disk.unmount()
            verdict = self.state_disk.check()
            self.state_disk.mount()
        self.get_wrapped_container().start()
        self.wait_booted()
        return verdict

    def exec_lines(self, command: str) -> Iterator[str]:
        """Run a shell command and yield its output line by line as it comes; the stream
        ends when the command does, or when the machine dies."""
        _, stream = self.get_wrapped_container().exec_run(["sh", "-c", command], stream=True)
        assert not isinstance(stream, bytes)  # streamed
        pending = b""
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from (line.decode(errors="replace") for line in lines)
        if pending:
            yield pending.decode(errors="replace")

    def run(self, command: str, *, user: str = "") -> Result:
        """Run a shell command; never raises on a non-zero exit."""
        code, output = self.get_wrapped_container().exec_run(["sh", "-c", command], user=user)
        assert code is not None and isinstance(output, bytes)  # waited for, not streamed
        return Result(code, output.decode(errors="replace"))

    def write_file(self, path: str, content: bytes | str, mode: int = 0o644) -> None:
        """Write a file, its missing parent directories made."""
        data = content.encode() if isinstance(content, str) else content
        self.copy_into_container(data, path, mode)

    def write_files(
        self, directory: str, files: Mapping[str, bytes | str], mode: int = 0o644
    ) -> None:
        """Write many files into one new directory with a single copy into the container."""
        with tempfile.TemporaryDirectory() as staging:
            staged = Path(staging) / Path(directory).name
            staged.mkdir()
            for name, content in files.items():
                data = content.encode() if isinstance(content, str) else content
                (staged / name).write_bytes(data)
                (staged / name).chmod(mode)
            self.check(f"mkdir -p {shlex.quote(str(Path(directory).parent))}")
            self.copy_into_container(staged, str(Path(directory).parent))

    def rewrite_file(self, path: str, content: str) -> None:
        """Replace a file's content in place, keeping its owner and mode, as an editor does."""
        staging = f"/var/tmp/rewrite-{Path(path).name}"
        self.write_file(staging, content)
        self.check(f"cat {staging} > {shlex.quote(path)} && rm {staging}")

    def check(self, command: str, *, user: str = "") -> str:
        """Run a shell command that must succeed; return its output."""
        result = self.run(command, user=user)
        if not result.ok:
            raise CommandFailed(f"`{command}` exited {result.exit_code}:\n{result.output}")
        return result.output

    def read_file(self, path: str) -> str:
        return self.check(f"cat {shlex.quote(path)}")

    def wait_booted(self) -> None:
        self.wait_until(self.init.boot_probe(), BOOT_TIMEOUT_S, f"{self.init} did not boot")

    def wait_until(self, probe: str, timeout_s: float, what: str) -> None:
        """Until the shell command `probe` succeeds in the machine; on a timeout, fail with
        `what` and the machine's logs."""
        try:
            _probe_strategy(probe, timeout_s).wait_until_ready(self)
        except TimeoutError as error:
            raise TimeoutError(f"{what} within {timeout_s} s\n{self.logs_for_humans()}") from error

    def wait_for_unix_socket(self, path: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        self.wait_until(f"test -S {shlex.quote(path)}", timeout_s, f"no socket {path}")

    def listens(self, port: int) -> bool:
        """Whether something in the container listens on the TCP port, seen with ss."""
        return self.run(_listen_probe(port)).ok

    def wait_for_tcp(self, port: int, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        self.wait_until(_listen_probe(port), timeout_s, f"nothing listens on {port}")

    def wait_for_tcp_closed(self, port: int, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        self.wait_until(f"! {{ {_listen_probe(port)}; }}", timeout_s, f"{port} still listens")

    def install(
        self,
        packages: Iterable[str],
        *,
        recommends: bool = False,
        source: str = "local",
        release: str | None = None,
        in_background_to: str | None = None,
    ) -> str:
        """apt-get install, as an administrator would, keeping changed conffiles; what it
        printed. With `in_background_to` (a log file), it runs in a session of its own and
        this returns at once, for a test that cuts it short.

        source="local" adds the locally built repository (our packages win by
        version); source="archive" installs from Debian's archive alone, for
        the "before" side of an upgrade, from `release` (a suite such as
        trixie-backports, added to apt's sources) when given.
        """
        names = " ".join(packages)
        flag = "" if recommends else "--no-install-recommends"
        if release:
            self.add_archive_suite(release)
            flag += f" -t {release}"
        add_local = (
            f"echo 'deb [trusted=yes] file:{REPO_MOUNT} ./' > {LOCAL_SOURCE}"
            f" && apt-get update -qq -o Dir::Etc::SourceList={LOCAL_SOURCE}"
            " -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0 && "
        )
        command = (
            (add_local if source == "local" else "")
            + "DEBIAN_FRONTEND=noninteractive apt-get install -y -q"
            " -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
            f" {flag} {names} 2>&1"
        )
        if in_background_to:
            return self.check(
                f"setsid sh -c {shlex.quote(command)} < /dev/null > {in_background_to} 2>&1 &"
            )
        return self.check(command)

    def add_archive_suite(self, suite: str) -> None:
        """Add a suite of the archive the image was made from (e.g. trixie-backports)."""
        mirror = self.check(
            "sed -n 's/^deb \\([^ ]*\\) .*/\\1/p' /etc/apt/sources.list | head -n 1"
        ).strip()
        self.check(
            f"echo 'deb {mirror} {suite} main' > /etc/apt/sources.list.d/{suite}.list"
            " && apt-get update -qq"
        )

    def service(self, action: str, name: str = "cyrus-imapd") -> Result:
        """What the administrator types (systemctl or service) and what they read."""
        return self.init.service(self, action, name)

    def explain_refused_start(self, start: Result, name: str = "cyrus-imapd") -> str:
        """What the administrator reads about `start`, a start that failed."""
        return self.init.explain_refused_start(self, name, start)

    def start_again(self, name: str = "cyrus-imapd") -> Result:
        """Start a service whose start was refused, once the cause is fixed, as an
        administrator does: the init system first forgets the failed start."""
        self.init.clear_start_limit(self, name)
        return self.service("start", name)

    def start_after_master_dies(self, killed_pid: str) -> Result:
        """The start that follows the death of master (pid `killed_pid`): systemd makes it
        by itself (Restart=on-abnormal); under sysvinit, which watches nothing, the
        administrator does (README.Debian). Ok when master runs again; the output is
        what the administrator reads about that start."""
        return self.init.start_after_master_dies(self, killed_pid, WAIT_TIMEOUT_S)

    def cyrus_log(self) -> str:
        """Everything Cyrus logged (syslog facility mail) since the machine was made."""
        return self.check(self.init.cyrus_log_command())

    def wait_until_logged(self, text: str, times: int, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        """Wait until Cyrus's log holds `text` on at least `times` lines."""
        count = f"{self.init.cyrus_log_command()} | grep -cF -- {shlex.quote(text)}"
        self.wait_until(
            f'test "$({count})" -ge {times}', timeout_s, f"{text!r} not logged {times} times"
        )

    def logs_for_humans(self, lines: int = 80) -> str:
        """What a person looks at first: service status, init log, Cyrus's own lines."""
        return "\n".join(
            f"--- {heading} ---\n{self.run(command).output}"
            for heading, command in self.init.report_commands(lines).items()
        )


@contextmanager
def private_network(
    client: docker.DockerClient, machines: Mapping[str, DebianContainer]
) -> Iterator[None]:
    """Join the machines to a bridge network of their own, each reachable from the others
    by its name in `machines`; the network is removed afterwards, whatever happened."""
    network = client.networks.create(
        f"cyrus-test-{uuid.uuid4().hex[:12]}", driver="bridge", labels=owner_labels()
    )
    try:
        for name, machine in machines.items():
            network.connect(machine.get_wrapped_container(), aliases=[name])
        yield
    finally:
        for machine in machines.values():
            # The machine may be gone already.
            with suppress(docker.errors.APIError):
                network.disconnect(machine.get_wrapped_container(), force=True)
        network.remove()
