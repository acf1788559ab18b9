"""Cyrus's Prometheus metrics as README.Debian ("Monitoring") turns them on: off and silent by
default; on, the counters move by exactly what clients did, the endpoint's text parses as
Prometheus's format, and a real Prometheus on a second machine scrapes it with the scrape job
we ship, over TLS with a login."""

import json
import poplib
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cyrus_deb.images import flavour_image
from cyrus_testbed.boot import CyrusServer
from cyrus_testbed.clients import (
    SERVERNAME,
    imap_login,
    lmtp_deliver_each,
    make_message,
    tls_context,
)
from cyrus_testbed.machine import DebianContainer, private_network
from cyrus_testbed.readme_debian import block_after, commands_after
from cyrus_testbed.server_config import IMAPD_CONF, LOCAL_FRAGMENT, restart

pytestmark = pytest.mark.integration

METRICS_PORT = 9143
EXAMPLES = "/usr/share/doc/cyrus-common/examples"
# Long enough for promstatsd (every 10 s) to add up what the processes counted.
REPORT_WAIT_S = 45
SCRAPE_INTERVAL_S = 5
PROMETHEUS_PASSWORD = "prometheus-secret"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Activity:
    deliveries: int = 5
    imap_logins: int = 3
    pop3_sessions: int = 2


def parse(text: str) -> Samples:
    """Every sample of an exposition, by prometheus_client's parser of the text format
    (which raises on anything that is not that format)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def local_metrics(machine: DebianContainer) -> Samples:
    """The loopback endpoint, read on the server itself."""
    fetch = (
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
        f"'http://127.0.0.1:{METRICS_PORT}/metrics').read().decode())"
    )
    return parse(machine.check(f"python3 -c {shlex.quote(fetch)}"))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a series over every label set that includes `labels` (promstatsd reports
    one sample per Cyrus service)."""
    wanted = set(labels.items())
    return sum(value for (n, found), value in samples.items() if n == name and wanted <= set(found))


def counted(samples: Samples) -> dict[str, float]:
    return {
        "lmtp messages received": total(samples, "cyrus_lmtp_received_messages_total"),
        "imap logins": total(samples, "cyrus_imap_authenticate_total", result="yes"),
        "imap connections": total(samples, "cyrus_imap_connections_total"),
        "pop3 connections": total(samples, "cyrus_pop3_connections_total"),
    }


def act(server: CyrusServer, activity: Activity) -> None:
    """Deliver, log in over IMAP and hold POP3 sessions, as clients do."""
    machine, password = server.machine, server.users.passwords["alice"]
    messages = [make_message(f"counted {n}") for n in range(activity.deliveries)]
    for replies in lmtp_deliver_each(machine, ["alice"], messages):
        assert replies.delivered_to("alice"), replies
    for _ in range(activity.imap_logins):
        imap_login(machine, "alice", password).logout()
    for _ in range(activity.pop3_sessions):
        pop = poplib.POP3("127.0.0.1", machine.port(110), timeout=30)
        pop.stls(tls_context())
        pop.user("alice")
        pop.pass_(password)
        pop.quit()


@pytest.fixture(scope="module")
def metrics_on(caldav_server: CyrusServer) -> CyrusServer:
    """Metrics turned on exactly as README.Debian says."""
    machine = caldav_server.machine
    added = block_after("To turn the metrics on, add these lines to /etc/imapd.conf:")
    machine.rewrite_file(IMAPD_CONF, machine.read_file(IMAPD_CONF) + added)
    for command in commands_after("then copy the example fragment and reload:"):
        machine.check(f"{command} 2>&1")
    machine.wait_for_tcp(METRICS_PORT)
    return caldav_server


def test_with_metrics_off_nothing_listens_for_them_and_nothing_counts(caldav_server, behaviour):
    machine = caldav_server.machine
    listening = sorted(machine.tcp_listeners())
    promstatsd = machine.host.process.filter(comm="promstatsd")
    stats = machine.run("test -e /var/lib/cyrus/stats")
    behaviour("metrics off (default): listening addresses", " ".join(listening))
    assert not any(address.endswith(f":{METRICS_PORT}") for address in listening)
    assert promstatsd == [], promstatsd
    assert not stats.ok, "processes count into /var/lib/cyrus/stats with metrics off"


def test_metrics_on_listen_on_loopback_only_and_move_by_exactly_what_clients_did(
    metrics_on, behaviour, figures
):
    machine = metrics_on.machine
    listening = [found for found in machine.tcp_listeners() if found.endswith(f":{METRICS_PORT}")]
    assert listening == [f"127.0.0.1:{METRICS_PORT}"], listening
    before = counted(local_metrics(machine))
    activity = Activity()
    act(metrics_on, activity)
    expected = {
        "lmtp messages received": activity.deliveries,
        "imap logins": activity.imap_logins,
        "imap connections": activity.imap_logins,
        "pop3 connections": activity.pop3_sessions,
    }
    started = time.monotonic()
    deadline = started + REPORT_WAIT_S
    while True:
        samples = local_metrics(machine)
        moved = {key: value - before[key] for key, value in counted(samples).items()}
        if moved == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    series = sorted({name for name, _ in samples})
    figures(moved=moved, report_seconds=round(time.monotonic() - started, 1), series=series)
    behaviour(
        "metrics on: counters moved after 5 deliveries, 3 IMAP logins, 2 POP3 sessions",
        " ".join(f"{key.replace(' ', '_')}=+{value:g}" for key, value in moved.items()),
    )
    assert moved == expected
    assert set(series) >= {
        "cyrus_lmtp_received_messages_total",
        "cyrus_imap_authenticate_total",
        "cyrus_pop3_connections_total",
    }


def test_master_series_appear_once_the_server_restarts_with_metrics_on(metrics_on, behaviour):
    """master reads imapd.conf only when it starts (README.Debian): after the reload that
    turned metrics on, its series are missing, and the endpoint still answers."""
    machine = metrics_on.machine
    before = {name for name, _ in local_metrics(machine)}
    restart(machine)
    machine.wait_for_tcp(METRICS_PORT)
    deadline = time.monotonic() + REPORT_WAIT_S
    after: set[str] = set()
    while "cyrus_master_active_children" not in after and time.monotonic() < deadline:
        time.sleep(1)
        after = {name for name, _ in local_metrics(machine)}
    master_series = sorted(name for name in after if name.startswith("cyrus_master_"))
    behaviour(
        "master's series after the reload that turned metrics on, then after a restart",
        f"{sum(name.startswith('cyrus_master_') for name in before)}, {len(master_series)}",
    )
    assert not any(name.startswith("cyrus_master_") for name in before), before
    assert "cyrus_master_active_children" in master_series, after


def prometheus_query(prometheus: DebianContainer, query: str) -> list[dict]:
    """The result vector of an instant query to Prometheus's HTTP API."""
    answer = json.loads(
        prometheus.check(
            "curl -sS --get http://127.0.0.1:9090/api/v1/query"
            f" --data-urlencode query={shlex.quote(query)}"
        )
    )
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.fixture
def prometheus_machine(docker_engine, target, packages_dir) -> Iterator[DebianContainer]:
    """A second machine with Debian's prometheus (and curl, to ask its API)."""
    image = flavour_image(docker_engine, target.distribution, target.init)
    machine = DebianContainer(image, target.init, packages_dir).start()
    try:
        machine.install(["prometheus", "curl"], source="archive")
        yield machine
    finally:
        machine.stop()


def scraped_from_another_machine(server: CyrusServer) -> None:
    """The server side of README.Debian's recipe for a Prometheus on another machine; the
    account's realm is the servername the test machines use (README.Debian,
    Authentication)."""
    machine = server.machine
    machine.write_file(LOCAL_FRAGMENT, block_after("metrics over TLS and ask for a login. Put in"))
    need_auth = block_after('instead of "metrics_prometheus_need_auth: none":').strip()
    machine.check(f"sed -i 's/^metrics_prometheus_need_auth: none$/{need_auth}/' {IMAPD_CONF}")
    account = commands_after("and an account for Prometheus alone (it needs no mailbox):")
    assert account == ['saslpasswd2 -c -u "$(hostname -f)" prometheus'], account
    machine.check(f"echo {PROMETHEUS_PASSWORD} | saslpasswd2 -p -c -u {SERVERNAME} prometheus")
    for command in commands_after("and reload the server:"):
        machine.check(f"{command} 2>&1")
    machine.wait_until(
        f"ss -Hltn 'sport = :{METRICS_PORT}' | grep -q '0.0.0.0:{METRICS_PORT}'",
        30,
        "the metrics service does not listen on every address",
    )


def scrape_job(server: DebianContainer, host: str) -> str:
    """prometheus.yml: a scrape interval for the test, then the job we ship, aimed at host."""
    job = server.read_file(f"{EXAMPLES}/prometheus-cyrus.yml")
    assert "mail.example.org:9143" in job
    return f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n" + job.replace(
        "mail.example.org:9143", f"{host}:{METRICS_PORT}"
    )


def single_value(result: list[dict]) -> float | None:
    """The value of a one-sample query result; None when Prometheus has no such sample."""
    return float(result[0]["value"][1]) if result else None


def test_a_prometheus_on_another_machine_scrapes_the_metrics_with_the_shipped_job(
    metrics_on, prometheus_machine, docker_engine, behaviour, figures
):
    """The last test of the module: it leaves the server set up for remote scraping."""
    server, prometheus = metrics_on.machine, prometheus_machine
    act(metrics_on, Activity(deliveries=2, imap_logins=0, pop3_sessions=0))
    delivered_at = time.monotonic()
    # The snakeoil certificate names the server's host name: Prometheus reaches it by that.
    host = server.check("hostname").strip()
    endpoint = f"https://{host}:{METRICS_PORT}/metrics"
    curl = "curl -sS --cacert /etc/prometheus/cyrus-server.pem"
    status_of = f"{curl} -o /dev/null -w '%{{http_code}}'"
    delivered = "cyrus_lmtp_received_messages_total"
    with private_network(docker_engine, {host: server, "prometheus": prometheus}):
        scraped_from_another_machine(metrics_on)
        prometheus.write_file(
            "/etc/prometheus/cyrus-server.pem",
            server.read_file("/etc/ssl/certs/ssl-cert-snakeoil.pem"),
        )
        prometheus.write_file(
            "/etc/prometheus/cyrus-metrics.password", PROMETHEUS_PASSWORD, mode=0o640
        )
        prometheus.check("chgrp prometheus /etc/prometheus/cyrus-metrics.password")
        prometheus.write_file("/etc/prometheus/prometheus.yml", scrape_job(server, host))
        prometheus.check("promtool check config /etc/prometheus/prometheus.yml 2>&1")
        assert prometheus.service("restart", "prometheus").ok
        prometheus.wait_until("curl -sf http://127.0.0.1:9090/-/ready", 60, "Prometheus not ready")
        answers = {
            "without login": prometheus.check(f"{status_of} {endpoint}"),
            "wrong password": prometheus.check(f"{status_of} -u prometheus:wrong {endpoint}"),
            "other paths": prometheus.check(
                f"{status_of} -u prometheus:{PROMETHEUS_PASSWORD} https://{host}:{METRICS_PORT}/dav/"
            ),
        }
        started = time.monotonic()
        deadline = started + REPORT_WAIT_S + 6 * SCRAPE_INTERVAL_S
        while True:
            shown = total(
                parse(prometheus.check(f"{curl} -u prometheus:{PROMETHEUS_PASSWORD} {endpoint}")),
                delivered,
            )
            stored = single_value(prometheus_query(prometheus, f"sum({delivered})"))
            if stored == shown or time.monotonic() > deadline:
                break
            time.sleep(1)
        up = single_value(prometheus_query(prometheus, 'up{job="cyrus"}'))
        # Stamped when scraped, not when the count last moved (honor_timestamps: false):
        # once the count is older than three scrapes, the two differ.
        time.sleep(max(0.0, delivered_at + 3 * SCRAPE_INTERVAL_S - time.monotonic()))
        sample_age = single_value(
            prometheus_query(prometheus, f"time() - max(timestamp({delivered}))")
        )
    figures(
        scrape_interval_s=SCRAPE_INTERVAL_S,
        until_stored_s=round(time.monotonic() - started, 1),
        stored=stored,
        endpoint=shown,
        sample_age_s=sample_age,
    )
    behaviour(
        "Prometheus on another machine, shipped scrape job (TLS, login)",
        f"up={up} stored_equals_endpoint={stored == shown} "
        + " ".join(f"{key.replace(' ', '_')}={code}" for key, code in answers.items()),
    )
    assert answers == {"without login": "401", "wrong password": "401", "other paths": "404"}
    assert up == 1
    assert stored == shown >= 2
    assert sample_age is not None and sample_age < 2 * SCRAPE_INTERVAL_S
