"""What differs between a machine booted with systemd and one booted with sysvinit: how it is
run, how it is known to be up, how a service is driven, where its logs are. Everything else
(the machine, the Cyrus server, the tests) asks its init system and never branches on it.

The docker flags are the ones measured to work on this kind of host (no --privileged).
Where Docker's defaults differ from a Debian host, the machine gets the host's settings;
container-vs-host.md, beside this file, lists every difference that remains.
"""

import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import docker

from cyrus_deb.images import CGROUP2_REMOUNT

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
CRON_FILE = "/etc/cron.d/cyrus-common"
# cron.d file names may hold letters, digits, "-" and "_" only: cron skips others.
CRON_RETIMED_COPY = "/etc/cron.d/cyrus-deb-test-now"
CRON_DISCARDED_OUTPUT = "No MTA installed, discarding output"
DAILY_TIMER_DROP_IN = "/run/systemd/system/cyrus-daily.timer.d/now.conf"


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


@dataclass(frozen=True)
class Result:
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Shell(Protocol):
    """What an init system needs of the machine it runs on."""

    def run(self, command: str, *, user: str = "") -> Result: ...

    def check(self, command: str, *, user: str = "") -> str: ...

    def wait_until(self, probe: str, timeout_s: float, what: str) -> None: ...


class InitSystem(ABC):
    """PID 1 of a machine, and the administrator's way of talking to it."""

    name: str
    # How Cyrus comes back after master dies, as README.Debian says.
    recovery_after_master_dies: str
    # What runs Cyrus's nightly job.
    daily_job: str
    # Where the init system's own log is, in words.
    log_name: str

    def __str__(self) -> str:
        return self.name

    @abstractmethod
    def host_settings(self, *, ipv6_loopback: bool = False) -> HostSettings: ...

    @abstractmethod
    def run_options(self) -> dict[str, object]:
        """docker run options beyond the host settings: the stop signal, the entry point."""

    @abstractmethod
    def testbed_entrypoint(self) -> list[str] | None:
        """The entry point of an image that autopkgtest starts with /sbin/init as its command;
        None when the image's own will do."""

    @abstractmethod
    def boot_probe(self) -> str:
        """A command that succeeds once the machine has finished booting."""

    @abstractmethod
    def service(self, shell: Shell, action: str, name: str) -> Result:
        """start, stop, restart, status: what the administrator types, and what it prints."""

    @abstractmethod
    def explain_refused_start(self, shell: Shell, name: str, start: Result) -> str:
        """What the administrator reads about a start that failed: what the start printed,
        and what that tells them to look at."""

    @abstractmethod
    def clear_start_limit(self, shell: Shell, name: str) -> None:
        """Forget earlier failed or rapid starts, so the next start is judged on its own."""

    @abstractmethod
    def start_after_master_dies(self, shell: Shell, killed_pid: str, timeout_s: float) -> Result:
        """The start that follows the death of master; ok when master runs again."""

    @abstractmethod
    def run_daily_job(self, shell: Shell) -> None:
        """Have the scheduler that runs Cyrus's nightly job here run it now, and wait until
        it has ended."""

    @abstractmethod
    def cyrus_log_command(self) -> str:
        """Prints everything Cyrus logged (syslog facility mail) since the machine was made."""

    @abstractmethod
    def system_log_command(self) -> str:
        """Prints everything logged on the machine (cron's lines among it)."""

    @abstractmethod
    def report_commands(self, lines: int) -> Mapping[str, str]:
        """What a person looks at first when a test fails, by heading."""

    @abstractmethod
    def forget_logs_command(self) -> str:
        """Empties the logs, so that a machine made from this one's image starts with none."""


def _host_sysctls(ipv6_loopback: bool) -> dict[str, str]:
    return HOST_SYSCTLS | (IPV6_LOOPBACK_SYSCTLS if ipv6_loopback else {})


class Systemd(InitSystem):
    name = "systemd"
    recovery_after_master_dies = "restarted by systemd"
    daily_job = "cyrus-daily.timer"
    log_name = "journal"

    def host_settings(self, *, ipv6_loopback: bool = False) -> HostSettings:
        # A cgroup namespace of its own, and CAP_SYS_ADMIN to mount its cgroup2 tree.
        return HostSettings(("SYS_ADMIN",), _host_sysctls(ipv6_loopback), cgroupns="private")

    def run_options(self) -> dict[str, object]:
        # systemd needs its cgroup2 tree mounted before it starts.
        entrypoint = ["/bin/sh", "-c", f"{CGROUP2_REMOUNT} && exec /sbin/init"]
        return {"stop_signal": "SIGRTMIN+3", "entrypoint": entrypoint}

    def testbed_entrypoint(self) -> list[str] | None:
        return ["/bin/sh", "-c", f'{CGROUP2_REMOUNT} && exec "$@"', "boot"]

    def boot_probe(self) -> str:
        return "systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'"

    def service(self, shell: Shell, action: str, name: str) -> Result:
        return shell.run(f"systemctl {shlex.quote(action)} {shlex.quote(name)} 2>&1")

    def explain_refused_start(self, shell: Shell, name: str, start: Result) -> str:
        # systemctl says: see `systemctl status UNIT`, which ends with the unit's last lines.
        status = shell.run(f"systemctl --no-pager --lines=20 status {shlex.quote(name)} 2>&1")
        return f"{start.output}\n{status.output}"

    def clear_start_limit(self, shell: Shell, name: str) -> None:
        # systemd refuses a sixth start within 10 s (StartLimitBurst), and a unit that
        # failed stays failed until this.
        shell.check(f"systemctl reset-failed {shlex.quote(name)}")

    def start_after_master_dies(self, shell: Shell, killed_pid: str, timeout_s: float) -> Result:
        # systemd makes that start by itself (Restart=on-abnormal).
        master_again = (
            "systemctl is-active --quiet cyrus-imapd"
            " && pid=$(systemctl show -P MainPID cyrus-imapd)"
            f" && [ $pid != 0 ] && [ $pid != {shlex.quote(killed_pid)} ]"
        )
        shell.wait_until(
            f"{{ {master_again}; }} || systemctl is-failed --quiet cyrus-imapd",
            timeout_s,
            "systemd neither restarted master nor gave up",
        )
        journal = shell.run("journalctl --no-pager -n 40 -u cyrus-imapd 2>&1").output
        return Result(0 if shell.run(master_again).ok else 1, journal)

    def run_daily_job(self, shell: Shell) -> None:
        # The packaged timer, retimed by a runtime drop-in to fire once, at once.
        ended = "systemctl show -P ExecMainExitTimestampMonotonic cyrus-daily.service"
        before = shell.check(ended).strip()
        shell.check(
            f"mkdir -p {DAILY_TIMER_DROP_IN.rsplit('/', 1)[0]}"
            f" && printf '[Timer]\\nOnCalendar=\\nRandomizedDelaySec=0\\nOnActiveSec=1s\\n'"
            f" > {DAILY_TIMER_DROP_IN}"
            " && systemctl daemon-reload && systemctl restart cyrus-daily.timer"
        )
        try:
            shell.wait_until(
                f'[ "$({ended})" != {shlex.quote(before)} ]',
                120,
                "cyrus-daily.timer did not run cyrus-daily.service",
            )
        finally:
            shell.check(
                f"rm -f {DAILY_TIMER_DROP_IN} && systemctl daemon-reload"
                " && systemctl restart cyrus-daily.timer"
            )

    def cyrus_log_command(self) -> str:
        return "journalctl --no-pager -o short SYSLOG_FACILITY=2"

    def system_log_command(self) -> str:
        return "journalctl --no-pager -o short"

    def report_commands(self, lines: int) -> Mapping[str, str]:
        return {
            "service status": "systemctl --no-pager status cyrus-imapd 2>&1; systemctl --failed",
            "journal": f"journalctl --no-pager -n {lines} 2>&1",
            "Cyrus (facility mail)": (
                "journalctl --no-pager -n 200 SYSLOG_FACILITY=2 2>&1 | tail -n 60"
            ),
        }

    def forget_logs_command(self) -> str:
        # The journal is persistent: archive what it holds, then drop every archive.
        return "journalctl --rotate && journalctl --vacuum-time=1s --quiet"


class SysVinit(InitSystem):
    name = "sysvinit"
    recovery_after_master_dies = "service cyrus-imapd start"
    daily_job = CRON_FILE
    log_name = "syslog"

    def host_settings(self, *, ipv6_loopback: bool = False) -> HostSettings:
        # SYS_PTRACE, so that pidof sees daemons of other users; SYS_BOOT for init itself.
        return HostSettings(
            ("SYS_PTRACE", "SYS_BOOT"), _host_sysctls(ipv6_loopback), ulimits=(SYSVINIT_NOFILE,)
        )

    def run_options(self) -> dict[str, object]:
        return {"stop_signal": "SIGINT"}

    def testbed_entrypoint(self) -> list[str] | None:
        return None

    def boot_probe(self) -> str:
        return "runlevel 2>/dev/null | grep -q ' 2$'"

    def service(self, shell: Shell, action: str, name: str) -> Result:
        return shell.run(f"service {shlex.quote(name)} {shlex.quote(action)} 2>&1")

    def explain_refused_start(self, shell: Shell, name: str, start: Result) -> str:
        # The init script prints the reason on the administrator's terminal.
        return start.output

    def clear_start_limit(self, shell: Shell, name: str) -> None:
        """sysvinit keeps no count of starts."""

    def start_after_master_dies(self, shell: Shell, killed_pid: str, timeout_s: float) -> Result:
        # sysvinit watches nothing: the administrator starts it (README.Debian).
        return self.service(shell, "start", "cyrus-imapd")

    def run_daily_job(self, shell: Shell) -> None:
        run_by_cron(shell, self, packaged_cron_entry(shell))

    def cyrus_log_command(self) -> str:
        return "cat /var/log/mail.log"

    def system_log_command(self) -> str:
        return "cat /var/log/syslog"

    def report_commands(self, lines: int) -> Mapping[str, str]:
        return {
            "service status": "service cyrus-imapd status 2>&1",
            "syslog": f"tail -n {lines} /var/log/syslog 2>&1",
            "Cyrus (facility mail)": "tail -n 60 /var/log/mail.log 2>&1",
        }

    def forget_logs_command(self) -> str:
        # rsyslog appends: files truncated under it stay in use.
        return "truncate -s 0 /var/log/syslog /var/log/mail.log"


def cron_entry(line: str) -> str:
    """The user and command of a cron.d line, without its five time fields."""
    return line.split(None, 5)[5]


def packaged_cron_entry(shell: Shell) -> str:
    """The user and command of the daily job's line in cyrus-common's cron.d file."""
    return cron_entry(shell.check(f"cat {CRON_FILE}").strip().splitlines()[-1])


@dataclass(frozen=True)
class CronRun:
    # cron mails what a job prints; with no MTA (as here) it says it discarded it.
    printed: bool


def run_by_cron(shell: Shell, init: InitSystem, entry: str) -> CronRun:
    """Have the machine's cron daemon run a cron.d entry ("USER COMMAND") once, in cron's
    own environment (PATH=/usr/bin:/bin, no terminal), and wait until the job has ended.
    cron starts a job only at a minute's turn: the entry goes into /etc/cron.d retimed to
    every minute, and out again once cron has started it."""
    user, command = entry.split(None, 1)
    started = f"({user}) CMD ({command[:60]}"
    log = init.system_log_command()

    def count(text: str) -> str:
        return f"$({log} | grep -cF -- {shlex.quote(text)})"

    started_before = shell.check(f"echo {count(started)}").strip()
    printed_before = shell.check(f"echo {count(CRON_DISCARDED_OUTPUT)}").strip()
    shell.check(f"printf '%s\\n' {shlex.quote(f'* * * * * {entry}')} > {CRON_RETIMED_COPY}")
    try:
        shell.wait_until(
            f'[ "{count(started)}" -gt {started_before} ]', 150, f"cron did not run {entry!r}"
        )
    finally:
        shell.check(f"rm -f {CRON_RETIMED_COPY}")
    # Each job runs under a child of cron that calls itself CRON and ends after the job
    # ("[C]" keeps the probe's own shell from matching).
    shell.wait_until("! pgrep -f '[C]RON'", 600, f"{entry!r} did not end")
    return CronRun(
        printed=shell.check(f"echo {count(CRON_DISCARDED_OUTPUT)}").strip() != printed_before
    )


INIT_SYSTEMS_BY_NAME: Mapping[str, InitSystem] = {
    init.name: init for init in (Systemd(), SysVinit())
}


def init_system(name: str) -> InitSystem:
    return INIT_SYSTEMS_BY_NAME[name]
