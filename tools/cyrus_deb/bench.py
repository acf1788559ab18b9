"""Our packages against a reference, side by side in one run, each figure interleaved.

Both sides boot from the same systemd test image on this machine. The
reference is Debian's own cyrus-imapd from a suite of the archive, or
Dovecot from trixie, configured only as much as it needs to run. Every loop is bounded in count,
all traffic goes through ports published on 127.0.0.1 or `docker exec`.
"""

import imaplib
import json
import poplib
import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import docker

from .clients import (
    LMTP_SOCKET,
    TEST_FILES,
    CyrusUsers,
    imap_connect,
    imap_login,
    provision_users,
    tls_context,
)
from .containers import DebianContainer, image_for_tests
from .progress import phase, say
from .server_config import (
    IMAPD_CONF,
    WITHOUT_IDLED,
    reconfigured,
    restart,
    run_without_uninstalled_services,
    with_options,
)

SERVER_PACKAGES = ["cyrus-imapd", "cyrus-pop3d", "sasl2-bin", "ssl-cert"]
AGENT_FILES = ("bench_agent.py", "lmtp_client.py")
AGENT = f"python3 {TEST_FILES}/bench_agent.py"
FETCH_MESSAGES = 2000
POP3_MESSAGES = 500
SINGLE_FETCHES = 200
LMTP_MESSAGES = 200
DOVECOT_LMTP = "/run/dovecot/lmtp"
LOGINS = 100
SEARCHES = 5
START_TIMEOUT_S = 60


@dataclass
class Side:
    """One server under test, set up and loaded, and the image to boot it again."""

    name: str
    version: str
    machine: DebianContainer
    users: CyrusUsers
    lmtp_socket: str = LMTP_SOCKET
    image: str = ""
    figures: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    higher_is_better: bool
    measure: Callable[[Side], float]

    @property
    def key(self) -> str:
        return f"{self.name} ({self.unit})"


def _agent(side: Side, *arguments: str) -> dict:
    return json.loads(side.machine.check(" ".join([AGENT, *arguments])))


def _install_agent(machine: DebianContainer) -> None:
    for name in AGENT_FILES:
        machine.write_file(f"{TEST_FILES}/{name}", (Path(__file__).parent / name).read_text())


def _lmtp_rate(connections: int) -> Callable[[Side], float]:
    def measure(side: Side) -> float:
        result = _agent(
            side, "lmtp-load", side.lmtp_socket, "lmtp", str(LMTP_MESSAGES), str(connections), "7"
        )
        if result["delivered"] != LMTP_MESSAGES:
            raise RuntimeError(f"{side.name}: {result['delivered']} of {LMTP_MESSAGES} delivered")
        return result["delivered"] / result["seconds"]

    return measure


def _login_select_logout_rate(side: Side) -> float:
    password = side.users.passwords["reader"]
    started = time.perf_counter()
    for _ in range(LOGINS):
        imap = imap_login(side.machine, "reader", password)
        imap.select("INBOX", readonly=True)
        imap.logout()
    return LOGINS / (time.perf_counter() - started)


@contextmanager
def _reader(side: Side) -> Iterator[imaplib.IMAP4]:
    imap = imap_login(side.machine, "reader", side.users.passwords["reader"])
    imap.select("INBOX", readonly=True)
    try:
        yield imap
    finally:
        imap.logout()


def _fetch_all(side: Side) -> tuple[int, int, float]:
    with _reader(side) as imap:
        started = time.perf_counter()
        _, data = imap.fetch("1:*", "(BODY.PEEK[])")
        seconds = time.perf_counter() - started
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    return len(bodies), sum(len(body) for body in bodies), seconds


def _fetch_all_messages_rate(side: Side) -> float:
    count, _, seconds = _fetch_all(side)
    if count != FETCH_MESSAGES:
        raise RuntimeError(f"{side.name}: fetched {count} of {FETCH_MESSAGES}")
    return count / seconds


def _fetch_all_megabytes_rate(side: Side) -> float:
    _, size, seconds = _fetch_all(side)
    return size / 1e6 / seconds


def _single_fetch_rate(side: Side) -> float:
    with _reader(side) as imap:
        started = time.perf_counter()
        for number in range(1, SINGLE_FETCHES + 1):
            imap.fetch(str(number), "(BODY.PEEK[])")
        return SINGLE_FETCHES / (time.perf_counter() - started)


def _search_text_rate(side: Side) -> float:
    with _reader(side) as imap:
        started = time.perf_counter()
        for _ in range(SEARCHES):
            status, _ = imap.search(None, "TEXT", '"zzzqqq"')
            assert status == "OK"
        return SEARCHES / (time.perf_counter() - started)


def _pop3_retr_rate(side: Side) -> float:
    pop = poplib.POP3("127.0.0.1", side.machine.port(110), timeout=30)
    pop.stls(tls_context())
    pop.user("popper")
    pop.pass_(side.users.passwords["popper"])
    count, _ = pop.stat()
    if count != POP3_MESSAGES:
        raise RuntimeError(f"{side.name}: {count} messages in the POP3 mailbox")
    started = time.perf_counter()
    for number in range(1, count + 1):
        pop.retr(number)
    seconds = time.perf_counter() - started
    pop.quit()
    return count / seconds


def _idle_latency_ms(side: Side) -> float:
    result = _agent(side, "idle-latency", side.lmtp_socket, "idler", side.users.passwords["idler"])
    if result["seconds"] is None:
        raise RuntimeError(f"{side.name}: no EXISTS within the wait")
    return result["seconds"] * 1000


def _start_to_login_ms(side: Side) -> float:
    started = time.perf_counter()
    machine = DebianContainer(side.image, side.machine.init, side.machine.repo).start()
    try:
        deadline = started + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            try:
                imap_login(machine, "reader", side.users.passwords["reader"]).logout()
                return (time.perf_counter() - started) * 1000
            except (OSError, imaplib.IMAP4.error):
                time.sleep(0.02)
        raise RuntimeError(f"{side.name}: no LOGIN within {START_TIMEOUT_S} s of start")
    finally:
        machine.stop()


FIGURES = (
    Figure("LMTP deliveries, 1 connection", "msg/s", True, _lmtp_rate(1)),
    Figure("LMTP deliveries, 4 connections", "msg/s", True, _lmtp_rate(4)),
    Figure("IMAP LOGIN+SELECT+LOGOUT", "/s", True, _login_select_logout_rate),
    Figure(f"FETCH 1:* BODY.PEEK[] of {FETCH_MESSAGES}", "msg/s", True, _fetch_all_messages_rate),
    Figure(f"FETCH 1:* BODY.PEEK[] of {FETCH_MESSAGES}", "MB/s", True, _fetch_all_megabytes_rate),
    Figure("FETCH one message per command", "msg/s", True, _single_fetch_rate),
    Figure(f"SEARCH TEXT over {FETCH_MESSAGES}", "searches/s", True, _search_text_rate),
    Figure("POP3 RETR", "msg/s", True, _pop3_retr_rate),
    Figure("IDLE with idled: delivery to EXISTS", "ms", False, _idle_latency_ms),
    Figure("container start to first IMAP LOGIN", "ms", False, _start_to_login_ms),
)

# Measured in a phase of its own, after the others: both sides without idled.
POLLING = Figure("IDLE by polling every 1 s: delivery to EXISTS", "ms", False, _idle_latency_ms)
POLLING_OPTIONS = {"imapidlepoll": "1"}
CYRUS_CONF = "/etc/cyrus.conf"

BENCH_USERS = ("reader", "popper", "idler", "lmtp")


@contextmanager
def _polling(side: Side) -> Iterator[None]:
    """Run the side without idled, so imapd polls every second; then put it back."""
    machine = side.machine
    if side.name == "ours":
        with reconfigured(machine, options=POLLING_OPTIONS, local_fragment=WITHOUT_IDLED):
            assert not machine.exec("pgrep -x idled").ok, "idled still runs"
            yield
        return
    original = machine.read_file(CYRUS_CONF)
    kept = [line for line in original.splitlines() if not re.match(r"\s*idled\s", line)]
    machine.rewrite_file(CYRUS_CONF, "\n".join(kept) + "\n")
    try:
        with reconfigured(machine, options=POLLING_OPTIONS):
            assert not machine.exec("pgrep -x idled").ok, "idled still runs"
            yield
    finally:
        machine.rewrite_file(CYRUS_CONF, original)
        restart(machine)


def _load(side: Side) -> None:
    """The same generated mail for both sides: a fixed seed per mailbox."""
    _install_agent(side.machine)
    for user, count, seed in (("reader", FETCH_MESSAGES, "1"), ("popper", POP3_MESSAGES, "2")):
        result = _agent(side, "lmtp-load", side.lmtp_socket, user, str(count), "1", seed)
        if result["delivered"] != count:
            raise RuntimeError(f"{side.name}: loading {user}: {result['delivered']} of {count}")
    side.image = (
        side.machine.get_wrapped_container()
        .commit(repository="cyrus-deb/bench", tag=side.name.replace(" ", "-"))
        .id
    )


def _boot(client: docker.DockerClient, repo: Path) -> DebianContainer:
    """Every side starts from the same image: trixie, systemd, our dependencies."""
    return DebianContainer(
        image_for_tests(client, "trixie", "systemd", repo), "systemd", repo
    ).start()


def _ours(client: docker.DockerClient, repo: Path) -> Side:
    machine = _boot(client, repo)
    machine.install(SERVER_PACKAGES)
    return _side("ours", machine)


def _debian(client: docker.DockerClient, repo: Path, suite: str) -> Side:
    machine = _boot(client, repo)
    machine.install(SERVER_PACKAGES, source="archive", release=suite)
    # What Debian's package needs to run: its cyrus.conf starts nntp and
    # http, whose programs are not installed; idled runs on our side, so it
    # runs on theirs (it has no DAEMON section, where Cyrus 3.12 wants it);
    # its backport makes a second POP3 login within a minute wait.
    run_without_uninstalled_services(machine, "nntp|http")
    machine.check("""printf 'DAEMON {\\n  idled cmd="idled"\\n}\\n' >> /etc/cyrus.conf""")
    # Like for like: the same snakeoil certificate as ours, so that clients say
    # STARTTLS on both sides, as they must on ours (allowplaintext: no).
    machine.check("adduser cyrus ssl-cert")
    options = {
        "popminpoll": "0",
        "allowstarttls": "yes",
        "tls_server_cert": "/etc/ssl/certs/ssl-cert-snakeoil.pem",
        "tls_server_key": "/etc/ssl/private/ssl-cert-snakeoil.key",
    }
    machine.rewrite_file(IMAPD_CONF, with_options(machine.read_file(IMAPD_CONF), options))
    return _side(f"debian {suite}", machine)


def _side(name: str, machine: DebianContainer) -> Side:
    users = provision_users(machine, BENCH_USERS)
    version = machine.check("dpkg-query -W -f='${Version}' cyrus-common").strip()
    return _checked(Side(name, version, machine, users))


def _dovecot(client: docker.DockerClient, repo: Path) -> Side:
    """Dovecot as Debian 13 installs it: PAM users, mbox in /var/mail, LMTP on
    /run/dovecot/lmtp, STARTTLS with its own certificate; nothing to configure."""
    machine = _boot(client, repo)
    machine.install(["dovecot-imapd", "dovecot-pop3d", "dovecot-lmtpd"], source="archive")
    passwords = {name: f"{name}-secret" for name in BENCH_USERS}
    for name, password in passwords.items():
        machine.check(f"useradd -m {name} && echo {name}:{password} | chpasswd")
    machine.wait_for_unix_socket(DOVECOT_LMTP)
    version = machine.check("dpkg-query -W -f='${Version}' dovecot-core").strip()
    users = CyrusUsers("", "", passwords)  # no administrator: Dovecot needs none
    return _checked(Side("dovecot", version, machine, users, DOVECOT_LMTP))


def _checked(side: Side) -> Side:
    probe = imap_connect(side.machine, starttls=False)
    offered = "STARTTLS" in probe.capabilities
    probe.logout()
    if not offered:
        raise RuntimeError(f"{side.name} offers no STARTTLS: the figures would not compare")
    return side


def _summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def render(results: dict) -> str:
    ours, reference = results["sides"]
    lines = [
        f"{'figure':<44} {ours['name'] + ' ' + ours['version']:>30}"
        f" {reference['name'] + ' ' + reference['version']:>38}  ours/ref",
    ]
    for figure in results["figures"]:
        cells = []
        for side in ("ours", "reference"):
            low, mid, high = (figure[side][k] for k in ("min", "median", "max"))
            cells.append(f"{mid:>10.1f} [{low:.1f}-{high:.1f}]")
        better = "higher" if figure["higher_is_better"] else "lower"
        lines.append(
            f"{figure['name'] + ' (' + figure['unit'] + ')':<44} {cells[0]:>30} {cells[1]:>38}"
            f"  {figure['ratio']:>7.2f} ({better} is better)"
        )
    return "\n".join(lines)


def _reference(client: docker.DockerClient, repo: Path, reference: str) -> Side:
    if reference == "dovecot":
        return _dovecot(client, repo)
    return _debian(client, repo, reference)


def _measure(sides: list[Side], figure: Figure, rounds: int) -> None:
    """Every round measures both sides, the first going second in the next round."""
    for round_number in range(rounds):
        for side in sides if round_number % 2 == 0 else sides[::-1]:
            side.figures.setdefault(figure.key, []).append(figure.measure(side))


def run_bench(client: docker.DockerClient, repo: Path, reference: str, rounds: int) -> dict:
    """Set both sides up, then measure every figure `rounds` times on each. `reference`
    is an archive suite whose cyrus-imapd to compare with, or dovecot."""
    with ExitStack() as cleanup:
        sides = []
        for make in (lambda: _ours(client, repo), lambda: _reference(client, repo, reference)):
            with phase("setting up a side"):
                side = make()
                cleanup.callback(side.machine.stop)
                _load(side)
                cleanup.callback(client.images.remove, side.image, force=True)
                say(f"{side.name}: {side.version}")
                sides.append(side)
        with phase(f"{rounds} rounds of every figure"):
            for figure in FIGURES:
                _measure(sides, figure, rounds)
        figures = FIGURES
        # Dovecot has no idled to turn off: inotify tells it of changes.
        if reference != "dovecot":
            with ExitStack() as polling, phase("IDLE by polling, both sides without idled"):
                for side in sides:
                    polling.enter_context(_polling(side))
                _measure(sides, POLLING, rounds)
            figures = (*FIGURES, POLLING)
        ours, other = sides
        return {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "rounds": rounds,
            "sides": [
                {"name": "ours", "version": ours.version},
                {"name": other.name, "version": other.version},
            ],
            "figures": [_compare(figure, ours, other) for figure in figures],
        }


def _compare(figure: Figure, ours: Side, reference: Side) -> dict:
    mine, theirs = ours.figures[figure.key], reference.figures[figure.key]
    return {
        "name": figure.name,
        "unit": figure.unit,
        "higher_is_better": figure.higher_is_better,
        "ours": _summary(mine),
        "reference": _summary(theirs),
        "ratio": statistics.median(mine) / statistics.median(theirs),
        "samples": {"ours": mine, "reference": theirs},
    }
