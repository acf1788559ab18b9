"""Boot Debian containers with a real init, install the locally built packages, read their logs.

The docker flags are the ones measured to work on this kind of host (no
--privileged): systemd gets its own cgroup2 hierarchy, sysvinit gets
SYS_PTRACE (so pidof sees daemons of other users) and SYS_BOOT. Where Docker's
defaults differ from a Debian host, the machine is given the host's settings;
container-vs-host.md, beside this file, lists every difference that remains and
why it does not hide a defect.
"""

import io
import shlex
import tarfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import docker
from debian.deb822 import Packages
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from .disks import Ext4Disk, FsckVerdict
from .engine import owner_labels
from .images import APT_INSTALL, CGROUP2_REMOUNT, Recipe, ensure_image, flavour_image

# Ryuk, testcontainers' reaper, is an image that cannot be pulled here; the
# fixtures remove their containers themselves.
testcontainers_config.ryuk_disabled = True

REPO_MOUNT = "/srv/cyrus-repo"
LOCAL_SOURCE = "/etc/apt/sources.list.d/cyrus-local.list"
BOOT_TIMEOUT_S = 60
WAIT_TIMEOUT_S = 30
PUBLISHED_PORTS = (24, 110, 143, 993, 995, 4190, 8008, 8443)

# What a Debian host's kernel has and Docker changes in every container: any user
# may bind ports below 1024 there (0), and unprivileged ICMP sockets are allowed.
HOST_SYSCTLS = {
    "net.ipv4.ip_unprivileged_port_start": "1024",
    "net.ipv4.ping_group_range": "1 0",
}
# Docker leaves IPv6 off inside containers; a real machine has ::1.
IPV6_LOOPBACK_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.ipv6.conf.lo.disable_ipv6": "0",
}
# The open-files limit init and what it starts get from a host's kernel; under
# systemd, PID 1 sets its services' own (DefaultLimitNOFILE, or the unit's).
SYSVINIT_NOFILE = docker.types.Ulimit(name="nofile", soft=1024, hard=4096)


@dataclass(frozen=True)
class HostSettings:
    """How a machine of ours is run so that it behaves as a Debian host, not as Docker's
    defaults: the same for our own machines and for autopkgtest's testbeds."""

    capabilities: tuple[str, ...]
    sysctls: Mapping[str, str]
    ulimits: tuple[docker.types.Ulimit, ...] = ()
    cgroupns: str | None = None
    # /run is a tmpfs on a real machine; the tests reboot and expect it empty.
    tmpfs: tuple[str, ...] = ("/run", "/run/lock")

    def docker_kwargs(self) -> dict[str, object]:
        """For docker-py's containers.run, all but the tmpfs mounts."""
        kwargs: dict[str, object] = {
            "cap_add": list(self.capabilities),
            "sysctls": dict(self.sysctls),
            "ulimits": list(self.ulimits),
        }
        if self.cgroupns:
            kwargs["cgroupns"] = self.cgroupns
        return kwargs

    def docker_run_flags(self) -> list[str]:
        """The same, as `docker run` options."""
        flags = [f"--cap-add={capability}" for capability in self.capabilities]
        flags += [f"--sysctl={name}={value}" for name, value in self.sysctls.items()]
        flags += [f"--ulimit={u['Name']}={u['Soft']}:{u['Hard']}" for u in self.ulimits]
        flags += [f"--tmpfs={path}" for path in self.tmpfs]
        return flags + ([f"--cgroupns={self.cgroupns}"] if self.cgroupns else [])


def host_settings(init: str, *, ipv6_loopback: bool = False) -> HostSettings:
    """systemd gets a cgroup namespace of its own and CAP_SYS_ADMIN to mount its cgroup2
    tree; sysvinit gets SYS_PTRACE (so pidof sees daemons of other users) and SYS_BOOT."""
    sysctls = HOST_SYSCTLS | (IPV6_LOOPBACK_SYSCTLS if ipv6_loopback else {})
    if init == "systemd":
        return HostSettings(("SYS_ADMIN",), sysctls, cgroupns="private")
    return HostSettings(("SYS_PTRACE", "SYS_BOOT"), sysctls, ulimits=(SYSVINIT_NOFILE,))


SYSTEMD_ENTRYPOINT = ["/bin/sh", "-c", f"{CGROUP2_REMOUNT} && exec /sbin/init"]


def _listen_probe(port: int) -> str:
    return f"ss -Hltn 'sport = :{port}' | grep -q LISTEN"


# How each init system brings Cyrus back after master dies.
RECOVERY_AFTER_MASTER_DIES = {
    "systemd": "restarted by systemd",
    "sysvinit": "service cyrus-imapd start",
}


class CommandFailed(AssertionError):
    """A command in the container exited non-zero; carries what it printed."""


@dataclass(frozen=True)
class Result:
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def runtime_dependencies(repo: Path) -> list[str]:
    """Archive packages our .debs depend on (first alternative), without our own."""
    ours, wanted = set(), set()
    with (repo / "Packages").open() as handle:
        for stanza in Packages.iter_paragraphs(handle, use_apt_pkg=False):
            ours.add(stanza["Package"])
            for alternatives in stanza.relations["depends"]:
                wanted.add(alternatives[0]["name"])
    return sorted(wanted - ours)


def image_for_tests(client: docker.DockerClient, distribution: str, init: str, repo: Path) -> str:
    """The init flavour with our packages' dependencies preinstalled, so tests install fast."""
    parent = flavour_image(client, distribution, init)
    # python3 runs the tests' LMTP client inside the container.
    packages = " ".join([*runtime_dependencies(repo), "python3"])
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
    ) -> None:
        super().__init__(image)
        self.init, self.repo, self.state_disk = init, repo, state_disk
        for host_directory, path in (state_disk.binds() if state_disk else {}).items():
            self.with_volume_mapping(str(host_directory), path, "rw")
        settings = host_settings(init, ipv6_loopback=ipv6_loopback)
        self.with_volume_mapping(str(repo), REPO_MOUNT, "ro")
        for port in PUBLISHED_PORTS:
            # A random host port on loopback only: nothing else is ever a target.
            # (with_bind_ports cannot say "any port, on one address": set it directly.)
            self.ports[f"{port}/tcp"] = ("127.0.0.1", None)  # type: ignore[assignment]
        for path in settings.tmpfs:
            self.with_tmpfs_mount(path)
        # systemd needs its cgroup2 tree mounted before it starts (the image's CMD is init).
        by_init = (
            {"stop_signal": "SIGRTMIN+3", "entrypoint": SYSTEMD_ENTRYPOINT}
            if init == "systemd"
            else {"stop_signal": "SIGINT"}
        )
        self.with_kwargs(**settings.docker_kwargs(), labels=owner_labels(), **by_init)

    def port(self, container_port: int) -> int:
        """The loopback port on the host that reaches container_port."""
        return int(self.get_exposed_port(container_port))

    def start(self) -> "DebianContainer":
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
        pending = b""
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from (line.decode(errors="replace") for line in lines)
        if pending:
            yield pending.decode(errors="replace")

    def exec(self, command: str, *, user: str = "") -> Result:
        """Run a shell command; never raises on a non-zero exit."""
        code, output = self.get_wrapped_container().exec_run(["sh", "-c", command], user=user)
        return Result(code, output.decode(errors="replace"))

    def write_file(self, path: str, content: bytes | str, mode: int = 0o644) -> None:
        self.write_files(str(Path(path).parent), {Path(path).name: content}, mode)

    def write_files(
        self, directory: str, files: Mapping[str, bytes | str], mode: int = 0o644
    ) -> None:
        """Write many files into one directory with a single copy into the container."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, content in files.items():
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                archive.addfile(info, io.BytesIO(data))
        self.check(f"mkdir -p {shlex.quote(directory)}")
        self.get_wrapped_container().put_archive(directory, buffer.getvalue())

    def rewrite_file(self, path: str, content: str) -> None:
        """Replace a file's content in place, keeping its owner and mode, as an editor does."""
        staging = f"/var/tmp/rewrite-{Path(path).name}"
        self.write_file(staging, content)
        self.check(f"cat {staging} > {shlex.quote(path)} && rm {staging}")

    def check(self, command: str, *, user: str = "") -> str:
        """Run a shell command that must succeed; return its output."""
        result = self.exec(command, user=user)
        if not result.ok:
            raise CommandFailed(f"`{command}` exited {result.exit_code}:\n{result.output}")
        return result.output

    def read_file(self, path: str) -> str:
        return self.check(f"cat {shlex.quote(path)}")

    def wait_booted(self) -> None:
        if self.init == "systemd":
            probe = "systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'"
        else:
            probe = "runlevel 2>/dev/null | grep -q ' 2$'"
        self.wait_until(probe, BOOT_TIMEOUT_S, f"{self.init} did not finish booting")

    def wait_until(self, probe: str, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.exec(probe).ok:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{what} within {timeout_s} s\n{self.logs_for_humans()}")

    def wait_for_unix_socket(self, path: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        self.wait_until(f"test -S {shlex.quote(path)}", timeout_s, f"no socket {path}")

    def listens(self, port: int) -> bool:
        """Whether something in the container listens on the TCP port, seen with ss."""
        return self.exec(_listen_probe(port)).ok

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
        if self.init == "systemd":
            return self.exec(f"systemctl {action} {name} 2>&1")
        return self.exec(f"service {name} {action} 2>&1")

    def start_again(self, name: str = "cyrus-imapd") -> Result:
        """Start a service whose start was refused, once the cause is fixed, as an
        administrator does: on systemd, first clear the unit's failed state."""
        if self.init == "systemd":
            self.check(f"systemctl reset-failed {name}")
        return self.service("start", name)

    def start_after_master_dies(self, killed_pid: str) -> Result:
        """The start that follows the death of master (pid `killed_pid`): systemd makes it
        by itself (Restart=on-abnormal); under sysvinit, which watches nothing, the
        administrator does (README.Debian). Ok when master runs again; the output is
        what the administrator reads about that start."""
        if self.init == "sysvinit":
            return self.service("start")
        master_again = (
            "systemctl is-active --quiet cyrus-imapd"
            " && pid=$(systemctl show -P MainPID cyrus-imapd)"
            f" && [ $pid != 0 ] && [ $pid != {killed_pid} ]"
        )
        self.wait_until(
            f"{{ {master_again}; }} || systemctl is-failed --quiet cyrus-imapd",
            WAIT_TIMEOUT_S,
            "systemd neither restarted master nor gave up",
        )
        journal = self.exec("journalctl --no-pager -n 40 -u cyrus-imapd 2>&1").output
        return Result(0 if self.exec(master_again).ok else 1, journal)

    def cyrus_log(self) -> str:
        """Everything Cyrus logged (syslog facility mail) since the machine was made."""
        if self.init == "systemd":
            return self.check("journalctl --no-pager -o short SYSLOG_FACILITY=2")
        return self.check("cat /var/log/mail.log")

    def wait_until_logged(self, text: str, times: int, timeout_s: float = WAIT_TIMEOUT_S) -> None:
        """Wait until Cyrus's log holds `text` at least `times` times."""
        deadline = time.monotonic() + timeout_s
        while self.cyrus_log().count(text) < times:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged {times} times\n{self.logs_for_humans()}")
            time.sleep(0.2)

    def logs_for_humans(self, lines: int = 80) -> str:
        """What a person looks at first: service status, init log, Cyrus's own lines."""
        if self.init == "systemd":
            status = self.exec("systemctl --no-pager status cyrus-imapd 2>&1; systemctl --failed")
            journal = self.exec(f"journalctl --no-pager -n {lines} 2>&1")
            cyrus = self.exec("journalctl --no-pager -n 200 SYSLOG_FACILITY=2 2>&1 | tail -n 60")
        else:
            status = self.exec("service cyrus-imapd status 2>&1")
            journal = self.exec(f"tail -n {lines} /var/log/syslog 2>&1")
            cyrus = self.exec("tail -n 60 /var/log/mail.log 2>&1")
        return (
            f"--- service status ---\n{status.output}\n"
            f"--- {'journal' if self.init == 'systemd' else 'syslog'} ---\n{journal.output}\n"
            f"--- Cyrus (facility mail) ---\n{cyrus.output}"
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
