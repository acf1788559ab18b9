"""The built .debs hold what each package should, and nothing twice."""

import re
from collections import Counter
from pathlib import Path

import pytest
from debian.debfile import DebFile

CYRUS_BIN = "usr/lib/cyrus/bin"

# program (or file) -> the one package that must ship it
OWNERS = {
    f"{CYRUS_BIN}/master": "cyrus-common",
    f"{CYRUS_BIN}/lmtpd": "cyrus-common",
    f"{CYRUS_BIN}/idled": "cyrus-common",
    f"{CYRUS_BIN}/timsieved": "cyrus-common",
    f"{CYRUS_BIN}/reconstruct": "cyrus-common",
    f"{CYRUS_BIN}/imapd": "cyrus-imapd",
    f"{CYRUS_BIN}/pop3d": "cyrus-pop3d",
    f"{CYRUS_BIN}/nntpd": "cyrus-nntpd",
    f"{CYRUS_BIN}/httpd": "cyrus-caldav",
    f"{CYRUS_BIN}/mupdate": "cyrus-murder",
    f"{CYRUS_BIN}/sync_server": "cyrus-replication",
    "usr/bin/cyradm": "cyrus-admin",
    "usr/bin/sieveshell": "cyrus-admin",
    "usr/bin/imtest": "cyrus-clients",
    "usr/sbin/cyrus": "cyrus-common",
    "usr/sbin/cyrus-makedirs": "cyrus-common",
    "usr/lib/tmpfiles.d/cyrus-common.conf": "cyrus-common",
    "usr/lib/sysusers.d/cyrus-common.conf": "cyrus-common",
    "usr/lib/systemd/system/cyrus-imapd.service": "cyrus-common",
    "usr/lib/systemd/system/cyrus-daily.timer": "cyrus-common",
    "etc/init.d/cyrus-imapd": "cyrus-common",
    "usr/share/cyrus-common/imapd.conf": "cyrus-common",
    "usr/lib/cyrus/cyrus-migrate-conf": "cyrus-common",
    "usr/lib/cyrus/cyrus-check-mboxlist": "cyrus-common",
    "usr/sbin/cyrus-backup": "cyrus-common",
    "etc/cyrus.conf.d/10-common.conf": "cyrus-common",
    "etc/cyrus.conf.d/20-imapd.conf": "cyrus-imapd",
    "etc/cyrus.conf.d/20-pop3d.conf": "cyrus-pop3d",
    "etc/pam.d/imap": "cyrus-imapd",
    "etc/pam.d/pop": "cyrus-pop3d",
    "etc/pam.d/sieve": "cyrus-common",
    "etc/pam.d/lmtp": "cyrus-common",
    "etc/pam.d/mupdate": "cyrus-murder",
    "etc/pam.d/nntp": "cyrus-nntpd",
    "etc/pam.d/http": "cyrus-caldav",
    "etc/pam.d/csync": "cyrus-replication",
    "usr/share/doc/cyrus-common/README.Debian.gz": "cyrus-common",
    "usr/share/doc/cyrus-common/NEWS.Debian.gz": "cyrus-common",
    "usr/share/doc/cyrus-common/examples/30-metrics.conf": "cyrus-common",
    "usr/share/doc/cyrus-common/examples/prometheus-cyrus.yml": "cyrus-common",
    "usr/include/cyrus/imclient.h": "cyrus-dev",
}


def member_names(deb: Path) -> list[str]:
    """Files and links in the package, without directories."""
    members = DebFile(str(deb)).data.tgz().getmembers()
    return [m.name.removeprefix("./") for m in members if not m.isdir()]


@pytest.fixture(scope="module")
def contents(packages_dir) -> dict[str, list[str]]:
    return {deb.name.split("_")[0]: member_names(deb) for deb in sorted(packages_dir.glob("*.deb"))}


@pytest.mark.parametrize("path", sorted(OWNERS), ids=lambda p: p.rsplit("/", 1)[-1])
def test_file_ships_in_exactly_its_package(contents, path):
    holders = [package for package, names in contents.items() if path in names]
    assert holders == [OWNERS[path]]


def test_no_file_is_shipped_by_two_packages(contents):
    counts = Counter(
        name
        for names in contents.values()
        for name in names
        if not name.startswith("usr/share/doc/")
    )
    assert [name for name, count in counts.items() if count > 1] == []


def test_perl_modules_are_in_the_vendor_directory(contents):
    perl = contents["libcyrus-imap-perl"]
    assert any(n.endswith("/perl5/5.40/Cyrus/IMAP.pm") for n in perl), perl[:20]
    assert not any(n.startswith("usr/local/") for names in contents.values() for n in names)


def test_section_8_pages_are_prefixed_so_they_do_not_clash_with_postfix(contents):
    common = contents["cyrus-common"]
    assert "usr/share/man/man8/cyrus-master.8.gz" in common
    assert not any(n.endswith("/man8/master.8.gz") for n in common)


def test_lintian_reports_no_errors_and_no_warnings(packages_dir):
    report = (packages_dir / "lintian.txt").read_text()
    findings = [line for line in report.splitlines() if line.startswith(("E: ", "W: "))]
    assert findings == []


def test_documentation_uses_debians_jquery_instead_of_a_copy(packages_dir):
    deb = DebFile(str(next(packages_dir.glob("cyrus-doc_*.deb"))))
    jquery = deb.data.tgz().getmember("./usr/share/doc/cyrus-doc/html/_static/jquery.js")
    assert jquery.issym() and jquery.linkname == "../../../../javascript/jquery/jquery.js"
    assert "libjs-jquery" in deb.debcontrol()["Depends"]


# hardening-check findings that are not a missing flag, with why.
HARDENING_ACCEPTED = {
    # -fstack-protector-strong was on, as for every other program (build log); it adds
    # no canary to a program none of whose functions keeps an array on the stack, and
    # hardening-check then finds no __stack_chk_fail.
    "Stack protected": {
        f"{CYRUS_BIN}/{name}"
        for name in (
            "calalarmd",
            "cvt_cyrusdb",
            "cyr_pwd",
            "cyr_synclog",
            "cyr_withlock_run",
            "dav_reconstruct",
            "tls_prune",
        )
    },
}


@pytest.fixture(scope="module")
def build_log(packages_dir) -> str:
    """sbuild's log of the build, as `./cyrus-deb build` keeps it."""
    return (packages_dir / "build.log").read_text(errors="replace")


def test_sbuild_built_the_packages_and_debian_rules_binary_ran_without_fakeroot(build_log):
    assert build_log.startswith("sbuild (Debian sbuild) ")
    assert "\nStatus: successful\n" in build_log
    # Rules-Requires-Root: no, honoured: no root, not even a pretended one, at any step.
    binary_step = re.search(r"^ debian/rules binary$", build_log, re.MULTILINE)
    assert binary_step, "no binary step in the log"
    assert "fakeroot debian/rules" not in build_log


# The tests line of each CUnit run's summary; its Total, Ran and Passed columns.
CUNIT_TESTS_SUMMARY = re.compile(r"^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\d+$", re.MULTILINE)


def test_the_build_ran_every_upstream_unit_test_and_each_passed(build_log):
    if re.search(r"^ ?DEB_BUILD_OPTIONS=.*\bnocheck\b", build_log, re.MULTILINE):
        pytest.skip("these packages were built with nocheck: no unit test ran")
    # debian/rules splits upstream's one CUnit run into several: together they
    # must still run every registered test once.
    runs = [tuple(map(int, counts)) for counts in CUNIT_TESTS_SUMMARY.findall(build_log)]
    assert runs, "the build log has no CUnit summary"
    (registered,) = {total for total, _, _ in runs}
    ran = sum(run_count for _, run_count, _ in runs)
    passed = sum(pass_count for _, _, pass_count in runs)
    assert registered > 500
    assert ran == registered, f"{ran} of {registered} unit tests ran"
    assert passed == ran, f"{passed} of {ran} unit tests passed"


def test_every_compiler_and_linker_line_of_the_build_log_has_the_hardening_flags(
    packages_dir, build_log
):
    assert build_log.count("libtool: compile:") > 100, "blhc would have no compiler line to judge"
    assert (packages_dir / "blhc.txt").read_text() == ""


def test_every_elf_file_we_ship_passes_hardening_check(packages_dir):
    report = (packages_dir / "hardening.txt").read_text()
    failures, checked, current = [], 0, ""
    for line in report.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            current, checked = line.removeprefix("./").removesuffix(":"), checked + 1
            continue
        check, _, verdict = line.strip().partition(": ")
        accepted = current in HARDENING_ACCEPTED.get(check, set())
        if verdict.startswith("no") and "(ignored)" not in verdict and not accepted:
            failures.append(f"{current}: {check}: {verdict}")
    assert checked > 50, report[:2000]  # cyrus-common alone ships more programs
    assert not failures, "\n".join(failures)


def control_of(packages_dir: Path, package: str):
    return DebFile(str(next(packages_dir.glob(f"{package}_*.deb")))).debcontrol()


# package -> (field, what it must name), each for a reason given in debian/control
RELATIONS = [
    ("cyrus-imapd", "Provides", "imap-server"),
    ("cyrus-pop3d", "Provides", "pop3-server"),
    ("cyrus-murder", "Depends", "cyrus-imapd"),
    ("cyrus-murder", "Recommends", "cyrus-pop3d"),
    ("cyrus-murder", "Depends", "netbase"),
    ("cyrus-dev", "Depends", "libsasl2-dev"),
    ("cyrus-dev", "Depends", "libssl-dev"),
    ("cyrus-common", "Depends", "procps"),
    ("cyrus-common", "Depends", "libcap2"),
    ("cyrus-common", "Recommends", "default-mta | mail-transport-agent"),
]


@pytest.mark.parametrize(("package", "field", "names"), RELATIONS, ids="-".join)
def test_package_relation_is_declared(packages_dir, package, field, names):
    declared = [r.strip() for r in control_of(packages_dir, package).get(field, "").split(",")]
    assert any(r == names or r.startswith(f"{names} ") for r in declared), declared


def test_postinst_migrates_an_edited_cyrus_conf_before_it_starts_the_service(packages_dir):
    """Else master briefly runs the new default services, opening ports the old file kept
    closed, until the migration's restart."""
    deb = DebFile(str(next(packages_dir.glob("cyrus-common_*.deb"))))
    postinst = deb.control.get_content("postinst", encoding="utf-8")
    assert postinst is not None
    migrated = postinst.index("/usr/lib/cyrus/cyrus-migrate-conf")
    systemd_start = "deb-systemd-invoke $_dh_action 'cyrus-imapd.service'"
    for start in (systemd_start, "invoke-rc.d --skip-systemd-native cyrus-imapd $_dh_action"):
        assert migrated < postinst.index(start), start


# Programs in /usr/lib/cyrus/bin without a cyrus-PROGRAM.8 page, as README.Debian says.
PAGES_ELSEWHERE = {"dav_reconstruct": "usr/share/man/man1/dav_reconstruct.1.gz"}
WITHOUT_PAGE = {"cyr_pwd", "cyr_cd.sh"}


def test_every_program_has_the_manual_page_readme_debian_names(contents):
    shipped = {path for paths in contents.values() for path in paths}
    programs = {p.rsplit("/", 1)[1] for p in shipped if p.startswith(f"{CYRUS_BIN}/")}
    missing = [
        program
        for program in sorted(programs - WITHOUT_PAGE)
        if PAGES_ELSEWHERE.get(program, f"usr/share/man/man8/cyrus-{program}.8.gz") not in shipped
    ]
    assert not missing, missing
    assert programs >= WITHOUT_PAGE
