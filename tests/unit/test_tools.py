"""The tools' own logic: mirror discovery, the upstream tarball pin, the bench table."""

import ast
import configparser
import hashlib
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cyrus_deb.bench import (
    GUARD_FLOOR,
    GUARDED,
    SERVER_CPU,
    BenchResults,
    ComparedFigure,
    Figure,
    SideVersion,
    Spread,
    below_the_floor,
    plot,
    render,
)
from cyrus_deb.cli import TOX_ENVS, parser, tox_command
from cyrus_deb.errors import UserError
from cyrus_deb.mirror import host_mirror
from cyrus_deb.paths import REPO_ROOT, made_once
from cyrus_deb.sbuild import BuildUser, build_user
from cyrus_deb.upstream import orig_name, pinned_sha256, sha256_of, upstream_version
from cyrus_testbed.init_systems import INIT_SYSTEMS_BY_NAME, Systemd, SysVinit

pytest_plugins = ("pytester",)


@pytest.fixture
def apt_dir(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


def test_mirror_comes_from_a_deb822_sources_file_skipping_security(apt_dir):
    (apt_dir / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: trixie-security\n"
        "Components: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: trixie\n"
        "Components: main\n"
    )
    assert host_mirror(apt_dir) == "http://mirror.example/debian"


def test_mirror_comes_from_a_one_line_entry_with_options(apt_dir):
    (apt_dir / "sources.list").write_text(
        "# a comment\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    )
    assert host_mirror(apt_dir) == "http://one.example/debian"


def test_third_party_repositories_are_not_taken_for_a_debian_mirror(apt_dir):
    (apt_dir / "sources.list.d" / "node.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.example/node_20.x\nSuites: nodistro\n"
    )
    with pytest.raises(UserError, match="No Debian mirror"):
        host_mirror(apt_dir)


def test_a_build_user_without_subordinate_ids_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("cyrus_deb.sbuild.BUILD_USER", "root")  # a user every machine has
    id_files = (tmp_path / "subuid", tmp_path / "subgid")
    for path in id_files:
        path.write_text("someone-else:100000:65536\n")
    with pytest.raises(UserError, match=r"no range in .*subuid(.|\n)*usermod --add-subuids"):
        build_user(id_files)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
def test_giving_a_tree_to_the_build_user_changes_its_links_and_not_their_targets(tmp_path):
    tree, elsewhere = tmp_path / "tree", tmp_path / "elsewhere"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("in the tree")
    elsewhere.mkdir()
    (elsewhere / "target").write_text("not the build user's")
    (tree / "link").symlink_to(elsewhere)
    BuildUser("nobody", 65534, 65534, tree).give(tree)
    assert (tree / "sub" / "file").stat().st_uid == 65534
    assert (tree / "link").lstat().st_uid == 65534
    assert (elsewhere / "target").stat().st_uid == 0
    assert elsewhere.stat().st_uid == 0


def test_autopkgtest_testbeds_get_the_same_host_settings_as_our_machines():
    """The `docker run` flags given to autopkgtest say what docker-py is told for ours."""
    for init in INIT_SYSTEMS_BY_NAME.values():
        settings = init.host_settings(ipv6_loopback=True)
        kwargs, flags = settings.docker_kwargs(), settings.docker_run_flags()
        assert "--sysctl=net.ipv4.ip_unprivileged_port_start=1024" in flags
        assert "--sysctl=net.ipv6.conf.lo.disable_ipv6=0" in flags
        assert {"--tmpfs=/run", "--tmpfs=/run/lock"} <= set(flags)
        sysctls, capabilities = kwargs["sysctls"], kwargs["cap_add"]
        assert isinstance(sysctls, dict) and isinstance(capabilities, list)
        assert [f for f in flags if f.startswith("--sysctl")] == [
            f"--sysctl={name}={value}" for name, value in sysctls.items()
        ]
        assert [f for f in flags if f.startswith("--cap-add")] == [
            f"--cap-add={cap}" for cap in capabilities
        ]
    assert "--cgroupns=private" in Systemd().host_settings().docker_run_flags()
    assert "--ulimit=nofile=1024:4096" in SysVinit().host_settings().docker_run_flags()


def test_the_changelog_names_the_pinned_upstream_tarball():
    name = orig_name(upstream_version())
    assert name == "cyrus-imapd_3.12.4.orig.tar.xz"
    assert len(pinned_sha256(name)) == 64


def test_an_unpinned_tarball_is_refused_with_what_to_do():
    with pytest.raises(UserError, match=r"(?s)pins no sha256.*Add the line"):
        pinned_sha256("cyrus-imapd_9.9.9.orig.tar.xz")


def test_sha256_of_reads_the_whole_file(tmp_path):
    data = b"x" * (3 << 20)
    (tmp_path / "f").write_bytes(data)
    assert sha256_of(tmp_path / "f") == hashlib.sha256(data).hexdigest()


POP3_RETR = Figure("POP3 RETR", "msg/s", higher_is_better=True)


def _bench_results(
    ours: tuple[float, ...], reference: tuple[float, ...], figure: Figure = POP3_RETR
) -> BenchResults:
    return BenchResults(
        started="2026-11-26T05:00:00+00:00",
        rounds=3,
        ours=SideVersion("ours", "3.12.4-1+cyrusdeb1"),
        reference=SideVersion("debian trixie-backports", "3.12.3-1~bpo13+1"),
        figures=(ComparedFigure(figure, Spread(ours), Spread(reference)),),
    )


def test_bench_table_shows_both_sides_and_the_ratio():
    table = render(_bench_results((11.0, 9.0, 10.0), (4.0, 6.0, 5.0))).splitlines()
    assert "3.12.4-1+cyrusdeb1" in table[0] and "3.12.3-1~bpo13+1" in table[0]
    assert "POP3 RETR (msg/s)" in table[1] and "10.0 [9.0-11.0]" in table[1]
    assert "5.0 [4.0-6.0]" in table[1] and "2.00 (higher is better; better)" in table[1]
    assert "ours is worse beyond noise on no figure" in table


@pytest.mark.parametrize(
    ("ours", "reference", "expected"),
    [
        ((9, 10, 11), (10.5, 12, 13), "within noise"),
        ((9, 10, 11), (4, 5, 6), "better"),
        ((4, 5, 6), (9, 10, 11), "worse"),
    ],
)
def test_bench_calls_a_figure_worse_only_when_the_ranges_do_not_overlap(ours, reference, expected):
    results = _bench_results(ours, reference)
    assert results.figures[0].verdict == expected
    lowest_is_best = Figure("POP3 RETR", "ms", higher_is_better=False)
    flipped = {"within noise": "within noise", "better": "worse", "worse": "better"}
    assert _bench_results(ours, reference, lowest_is_best).figures[0].verdict == flipped[expected]
    if expected == "worse":
        assert "ours is worse beyond noise on: POP3 RETR (msg/s)" in render(results)


def test_bench_json_keeps_every_sample_and_the_summary_of_each_side():
    figure = _bench_results((11.0, 9.0, 10.0), (4.0, 6.0, 5.0)).as_json()["figures"][0]
    assert figure["ours"] == {"min": 9.0, "median": 10.0, "max": 11.0}
    assert figure["samples"] == {"ours": (11.0, 9.0, 10.0), "reference": (4.0, 6.0, 5.0)}
    assert (figure["ratio"], figure["verdict"]) == (2.0, "better")


@pytest.mark.parametrize(
    ("ours", "reference", "fails"),
    [
        ((180.8, 177.5, 192.3), (301.8, 297.3, 325.3), True),  # issue 40's LMTP: 0.60
        ((8.0, 8.0, 8.0), (10.0, 10.0, 10.0), True),  # a change to 0.8 of the reference
        ((9.0, 9.0, 9.0), (10.0, 10.0, 10.0), False),  # the noise of one tree run twice
        ((12.0, 12.0, 12.0), (10.0, 10.0, 10.0), False),
    ],
)
def test_the_bench_guard_fails_a_figure_at_the_floor_or_below_and_only_that(ours, reference, fails):
    higher_is_better = _bench_results(ours, reference)
    assert bool(below_the_floor(higher_is_better, GUARD_FLOOR)) == fails
    # The same times as good, where lower is better (a latency).
    latency = Figure("IDLE", "ms", higher_is_better=False)
    lower_is_better = _bench_results(reference, ours, latency)
    assert bool(below_the_floor(lower_is_better, GUARD_FLOOR)) == fails
    # The server's CPU time, counted in 10 ms ticks, is shown and never judged.
    assert not below_the_floor(_bench_results(reference, ours, SERVER_CPU), GUARD_FLOOR)


def test_the_bench_guard_measures_the_hot_path_and_runs_before_every_other_environment():
    guarded = {figure.key for measure in GUARDED for figure in measure.figures}
    assert {
        "LMTP deliveries, 1 connection (msg/s)",
        "LMTP deliveries, 4 connections (msg/s)",
        "FETCH 1:* BODY.PEEK[] of 2000, same host (msg/s)",
        "POP3 RETR (msg/s)",
    } <= guarded
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO_ROOT / "tox.ini")
    assert tox["testenv"]["depends"].strip() == "bench-guard"
    assert tox["testenv:bench-guard"]["depends"].strip() == ""
    assert "bench-guard" in TOX_ENVS.split(",")


def test_bench_plot_is_a_png(tmp_path):
    plot(_bench_results((9.0, 10.0, 11.0), (4.0, 5.0, 6.0)), tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG\r\n")


def test_the_lock_file_pins_every_dependency_within_pyproject_floors():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(line) for line in project["dependencies"]]
    wanted += [
        Requirement(line) for group in project["optional-dependencies"].values() for line in group
    ]
    pinned = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[canonicalize_name(name)] = version
    for requirement in wanted:
        locked = pinned.get(canonicalize_name(requirement.name))
        assert locked, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(locked), f"{requirement} but locked {locked}"


def test_only_init_systems_py_branches_on_the_init_system():
    """Machines, the server and the tests ask their InitSystem; none compares its name."""
    branch = re.compile(r"""\binit(?:\.name)?\s*[!=]=\s*["']""")
    found = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in sorted(
            [*(REPO_ROOT / "tools").rglob("*.py"), *(REPO_ROOT / "tests").rglob("*.py")]
        )
        if path.name != "init_systems.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if branch.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_gitlab_pipeline_runs_every_test_environment_and_each_machine_suite_per_init():
    pipeline = yaml.safe_load((REPO_ROOT / ".gitlab-ci.yml").read_text())
    matrix = pipeline["machines"]["parallel"]["matrix"]
    assert sorted(entry["INIT"] for entry in matrix) == sorted(INIT_SYSTEMS_BY_NAME)
    suites = [set(entry["SUITE"]) for entry in matrix]
    assert all(suite == suites[0] for suite in suites), matrix
    # The tests that boot no machine of an init system run in exactly one of the jobs.
    assert [entry.get("ONLY") for entry in matrix].count(None) == 1, matrix
    scripts = " ".join(
        line for job in pipeline.values() if isinstance(job, dict) for line in job.get("script", [])
    )
    named = set(re.findall(r"--envs ([\w-]+)", scripts)) | suites[0]
    assert named == set(TOX_ENVS.split(","))
    for job in pipeline.values():
        if isinstance(job, dict) and job.get("stage") == "test":
            assert job["needs"] == ["build"], job


MACHINE_TESTS = """
import pytest

@pytest.mark.only_on("systemd")
def test_about_systemd_alone(target):
    pass

def test_on_each_init(target):
    pass

def test_boots_no_machine():
    pass
"""


@pytest.mark.parametrize(
    ("options", "ran", "deselected"),
    [
        (["--init", "sysvinit"], {"test_on_each_init", "test_boots_no_machine"}, 1),
        (["--init", "sysvinit", "--init-bound-only"], {"test_on_each_init"}, 2),
        (
            ["--init", "systemd"],
            {"test_about_systemd_alone", "test_on_each_init", "test_boots_no_machine"},
            0,
        ),
    ],
)
def test_tests_left_out_by_init_system_are_deselected_never_reported_as_skipped(
    pytester, options, ran, deselected
):
    pytester.makeconftest('pytest_plugins = ("cyrus_testbed.plugin",)')
    pytester.makepyfile(MACHINE_TESTS)
    recorder = pytester.inline_run("-p", "no:cacheprovider", *options)
    passed, skipped, failed = recorder.listoutcomes()
    assert (skipped, failed) == ([], [])
    assert {report.nodeid.split("::")[1].split("[")[0] for report in passed} == ran
    left_out = [item for call in recorder.getcalls("pytest_deselected") for item in call.items]
    assert len(left_out) == deselected, left_out


def test_a_second_run_waits_while_another_makes_the_same_artefact_then_finds_it_made(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    artefact = tmp_path / "artefact"
    other_run = (
        "import pathlib, sys\n"
        "from cyrus_deb.paths import made_once\n"
        f"made_once('cyrus-deb/server-systemd-trixie:abc', pathlib.Path({str(artefact)!r}).exists,"
        " lambda: print('made twice'))\n"
    )
    second = None

    def make() -> None:
        nonlocal second
        second = subprocess.Popen(
            [sys.executable, "-c", other_run], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=os.environ,
        )  # fmt: skip
        assert second.stderr is not None
        waiting = second.stderr.readline()
        assert "waiting for another run making cyrus-deb/server-systemd-trixie:abc" in waiting
        assert second.poll() is None, "the second run went on while the first held the lock"
        artefact.write_text("made")

    made_once("cyrus-deb/server-systemd-trixie:abc", artefact.exists, make)
    assert second is not None
    out, _ = second.communicate(timeout=30)
    assert (second.returncode, out) == (0, "")


@pytest.mark.parametrize(
    ("words", "runner"),
    [
        (["test"], ["tox", "run-parallel", "--parallel=3", "--parallel-no-spinner"]),
        (["test", "--jobs", "1"], ["tox", "run"]),
        (["test", "--envs", "integration", "--", "-k", "lmtp"], ["tox", "run"]),
    ],
    ids=" ".join,
)
def test_several_environments_run_in_tox_parallel_mode_and_one_streams(words, runner):
    command = tox_command(parser().parse_args(words))
    assert command[: len(runner)] == runner
    assert command[len(runner)] == "-e"


def test_no_test_module_imports_another_and_support_code_lives_in_cyrus_testbed():
    """What tests share is in the cyrus_testbed package; a test module, or a conftest,
    imports none of its neighbours."""
    found = [
        f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
        for path in sorted((REPO_ROOT / "tests").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        and (node.level > 0 or (node.module or "").split(".")[0] == "tests")
    ]
    assert not found, "\n".join(found)


def test_the_quick_profile_leaves_out_the_environments_with_nothing_quick_in_them():
    command = tox_command(parser().parse_args(["test", "--quick"]))
    envs = command[command.index("-e") + 1].split(",")
    assert "reproducible" not in envs and {"lint", "unit", "integration"} <= set(envs)
    assert "bench-guard" not in envs
    with pytest.raises(UserError, match="--quick selects no test in reproducible"):
        tox_command(parser().parse_args(["test", "--quick", "--envs", "reproducible"]))
