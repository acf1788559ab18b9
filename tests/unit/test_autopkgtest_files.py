"""debian/tests holds what autopkgtest needs: a script per test, the known Cassandane
failures each with its reason, and stand-in modules that load."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from cyrus_deb.paths import REPO_ROOT
from cyrus_testbed.debian_control import dep8_test_names

TESTS = REPO_ROOT / "debian" / "tests"
STAND_INS = TESTS / "cassandane-stand-ins"


@pytest.mark.parametrize("name", dep8_test_names())
def test_every_dep8_test_has_an_executable_script(name):
    assert os.access(TESTS / name, os.X_OK)


def test_every_known_cassandane_failure_names_one_test_and_why():
    entries = [
        line
        for line in (TESTS / "cassandane-known-failures").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names = [line.split()[0] for line in entries]
    assert entries
    assert [line for line in entries if not re.fullmatch(r"Cyrus::\w+\.\w+\s+\S.*", line)] == []
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "module",
    sorted(path for path in STAND_INS.rglob("*.pm") if path.name != "DebianStandIn.pm"),
    ids=lambda path: path.stem,
)
def test_stand_in_module_loads_and_dies_on_use(module: Path):
    name = str(module.relative_to(STAND_INS).with_suffix("")).replace("/", "::")
    program = f"use {name}; my $o = {name}->new; eval {{ $o->anything }}; print $@"
    result = subprocess.run(
        ["perl", f"-I{STAND_INS}", "-e", program], capture_output=True, text=True, check=True
    )
    assert f"{name} is a stand-in" in result.stdout
