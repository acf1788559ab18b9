"""cyrus-assemble-conf: fragments in, one cyrus.conf out, uninstalled programs left out."""

from pathlib import Path

import pytest

from cyrus_deb.paths import DEBIAN_DIR
from cyrus_testbed.conf_scripts import SHIPPED_FRAGMENTS, assemble, entries, install_programs
from cyrus_testbed.murder import FRAGMENT_AFTER
from cyrus_testbed.readme_debian import block_after

METRICS_EXAMPLE = DEBIAN_DIR / "examples" / "30-metrics.conf"


@pytest.fixture
def programs(tmp_path):
    return install_programs(tmp_path / "bin", "ctl_cyrusdb", "lmtpd", "timsieved", "idled")


def test_shipped_fragments_without_imapd_or_pop3d_leave_their_services_out(programs):
    result = assemble(SHIPPED_FRAGMENTS, programs)
    assert result.returncode == 0, result.stderr
    assert "imap" not in entries(result.stdout)
    assert "pop3" not in entries(result.stdout)
    assert {"lmtpunix", "sieve", "idled", "recover"} <= set(entries(result.stdout))
    assert "leaving out SERVICES entry 'pop3'" in result.stderr


def test_installing_pop3d_brings_its_services_in(programs):
    install_programs(programs, "pop3d")
    result = assemble(SHIPPED_FRAGMENTS, programs)
    assert {"pop3", "pop3s"} <= set(entries(result.stdout))


def test_later_fragment_replaces_and_disables_entries_by_name(tmp_path, programs):
    fragments = tmp_path / "conf.d"
    fragments.mkdir()
    (fragments / "10-a.conf").write_text(
        'SERVICES {\n  sieve cmd="timsieved" listen="127.0.0.1:4190"\n'
        '  lmtp cmd="lmtpd" listen="127.0.0.1:24"\n}\n'
    )
    (fragments / "99-local.conf").write_text(
        'SERVICES {\n  sieve cmd="timsieved" listen="4190"\n  lmtp disabled\n}\n'
    )
    result = assemble(fragments, programs)
    assert result.returncode == 0, result.stderr
    assert '  sieve cmd="timsieved" listen="4190"' in result.stdout.splitlines()
    assert entries(result.stdout) == ["sieve"]


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("SERVICES {\n  imap cmd=imapd\n}\n", "not an entry"),
        ('SERVCES {\n  imap cmd="imapd"\n}\n', "unknown section 'SERVCES'"),
        ('SERVICES {\n  imap cmd="imapd"\n', "is not closed"),
        ('imap cmd="imapd"\n', "entry outside a section"),
    ],
    ids=["unquoted-cmd", "misspelt-section", "unclosed-section", "no-section"],
)
def test_malformed_fragment_is_refused_with_file_and_line(tmp_path, programs, fragment, message):
    fragments = tmp_path / "conf.d"
    fragments.mkdir()
    (fragments / "50-bad.conf").write_text(fragment)
    result = assemble(fragments, programs)
    assert result.returncode != 0
    assert message in result.stderr
    assert "50-bad.conf" in result.stderr


def test_no_fragments_is_an_error_not_an_empty_config(tmp_path, programs):
    result = assemble(tmp_path, programs)
    assert result.returncode != 0
    assert "no *.conf fragments" in result.stderr


def with_metrics_example(tmp_path: Path) -> Path:
    """The shipped fragments plus the metrics example, copied as README.Debian says."""
    fragments = tmp_path / "conf.d"
    fragments.mkdir()
    for fragment in [*SHIPPED_FRAGMENTS.glob("*.conf"), METRICS_EXAMPLE]:
        (fragments / fragment.name).write_text(fragment.read_text())
    return fragments


def test_metrics_example_brings_promstatsd_and_a_loopback_only_metrics_service(tmp_path, programs):
    install_programs(programs, "httpd", "promstatsd")
    result = assemble(with_metrics_example(tmp_path), programs)
    assert result.returncode == 0, result.stderr
    assert {"promclean", "metrics", "promstatsd"} <= set(entries(result.stdout))
    assert '  metrics       cmd="httpd" listen="127.0.0.1:9143" prefork=0' in result.stdout


def test_metrics_example_without_cyrus_caldav_leaves_the_endpoint_out(tmp_path, programs):
    install_programs(programs, "promstatsd")
    result = assemble(with_metrics_example(tmp_path), programs)
    assert "metrics" not in entries(result.stdout)
    assert "leaving out SERVICES entry 'metrics'" in result.stderr


@pytest.mark.parametrize("role", FRAGMENT_AFTER)
def test_the_murder_fragment_shows_what_readme_debian_puts_in_99_local_conf(role):
    """20-murder.conf's commented lines are the ones the Murder tests run, for each role."""
    fragment = (SHIPPED_FRAGMENTS / "20-murder.conf").read_text()
    shown = [" ".join(line.lstrip("#").split()) for line in fragment.splitlines()]
    block = [" ".join(line.split()) for line in block_after(FRAGMENT_AFTER[role]).splitlines()]
    at = [n for n in range(len(shown)) if shown[n : n + len(block)] == block]
    assert at, f"20-murder.conf does not show README.Debian's {role} lines:\n" + "\n".join(block)
