"""cyrus-migrate-conf: an administrator's old cyrus.conf becomes a fragment that runs the
same services, with idled moved to DAEMON."""

import subprocess
from pathlib import Path

from cyrus_deb.paths import DEBIAN_DIR
from cyrus_testbed.conf_scripts import SHIPPED_FRAGMENTS, assemble, entries, install_programs

MIGRATOR = DEBIAN_DIR / "scripts" / "cyrus-migrate-conf"
# The shape of the cyrus.conf of Debian's own packages, with an administrator's
# changes: idled enabled in START as its comments used to say, pop3 gone.
OLD_CYRUS_CONF = """\
# an administrator's cyrus.conf
START {
\trecover\t\tcmd="/usr/sbin/cyrus ctl_cyrusdb -r"
\tidled\t\tcmd="idled"
}

SERVICES {
\timap\t\tcmd="imapd -U 30" listen="imap" prefork=0 maxchild=100
  \tlmtpunix\tcmd="lmtpd" listen="/run/cyrus/socket/lmtp" prefork=0 maxchild=20
\tsieve\t\tcmd="timsieved" listen="localhost:sieve" prefork=0 maxchild=100
}

EVENTS {
\tcheckpoint\tcmd="/usr/sbin/cyrus ctl_cyrusdb -c" period=30
\texpungeprune\tcmd="/usr/sbin/cyrus expire -E 4 -X 28" at=0445
}
"""


def migrate(old: Path, fragments: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["perl", str(MIGRATOR), str(old), str(fragments)], capture_output=True, text=True
    )


def sections(config: str) -> dict[str, list[str]]:
    """Section name -> the first word of each of its lines."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in config.splitlines():
        if line.endswith("{"):
            current = line.split()[0]
        elif line.startswith("  "):
            found.setdefault(current, []).append(" ".join(line.split()[:2]))
    return found


def test_idled_moves_from_start_to_daemon_and_every_other_entry_stays(tmp_path):
    old = tmp_path / "cyrus.conf"
    old.write_text(OLD_CYRUS_CONF)
    result = migrate(old, SHIPPED_FRAGMENTS)
    assert result.returncode == 0, result.stderr
    found = sections(result.stdout)
    assert found["START"] == ['recover cmd="/usr/sbin/cyrus']
    assert 'idled cmd="idled"' in found["DAEMON"]
    assert found["EVENTS"][:2] == [
        'checkpoint cmd="/usr/sbin/cyrus',
        'expungeprune cmd="/usr/sbin/cyrus',
    ]
    assert 'lmtpunix cmd="lmtpd"' in found["SERVICES"]


def test_services_the_old_file_did_not_run_are_disabled_so_no_new_port_opens(tmp_path):
    old = tmp_path / "cyrus.conf"
    old.write_text(OLD_CYRUS_CONF)
    found = sections(migrate(old, SHIPPED_FRAGMENTS).stdout)
    assert {"imaps disabled", "lmtp disabled", "pop3 disabled", "pop3s disabled"} <= set(
        found["SERVICES"]
    )
    assert "imap disabled" not in found["SERVICES"]
    assert "idled disabled" not in found["DAEMON"]


def test_migrated_fragment_assembles_to_the_old_service_set(tmp_path):
    programs = install_programs(
        tmp_path / "bin", "cyrus", "ctl_cyrusdb", "lmtpd", "timsieved", "idled", "imapd", "pop3d"
    )
    old = tmp_path / "cyrus.conf"
    old.write_text(OLD_CYRUS_CONF.replace("/usr/sbin/cyrus", str(programs / "cyrus")))
    fragments = tmp_path / "conf.d"
    fragments.mkdir()
    for shipped in SHIPPED_FRAGMENTS.glob("*.conf"):
        (fragments / shipped.name).write_text(shipped.read_text())
    (fragments / "80-migrated-cyrus.conf").write_text(migrate(old, fragments).stdout)
    result = assemble(fragments, programs)
    assert result.returncode == 0, result.stderr
    assert sorted(entries(result.stdout)) == sorted(
        ["recover", "imap", "lmtpunix", "sieve", "checkpoint", "expungeprune", "idled"]
    )


def test_a_line_it_cannot_read_stops_it_with_the_place_to_fix(tmp_path):
    old = tmp_path / "cyrus.conf"
    old.write_text("SERVICES {\n  imap cmd=imapd\n  = broken\n}\n")
    result = migrate(old, SHIPPED_FRAGMENTS)
    assert result.returncode != 0
    assert f"{old}:3: cannot read this line" in result.stderr


def test_fragments_still_unpacked_as_dpkg_new_count_as_shipped(tmp_path):
    """While cyrus-common's postinst runs, the conffiles of a cyrus-imapd upgraded with it
    are still NAME.dpkg-new: imaps must be disabled all the same."""
    fragments = tmp_path / "cyrus.conf.d"
    fragments.mkdir()
    for fragment in SHIPPED_FRAGMENTS.glob("*.conf"):
        suffix = ".dpkg-new" if fragment.name == "20-imapd.conf" else ""
        (fragments / f"{fragment.name}{suffix}").write_text(fragment.read_text())
    old = tmp_path / "cyrus.conf"
    old.write_text(OLD_CYRUS_CONF)
    found = sections(migrate(old, fragments).stdout)
    assert "imaps disabled" in found["SERVICES"]
