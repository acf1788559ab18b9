"""Every `./cyrus-deb` command README.md shows parses, and each test selection it shows
reaches pytest as written and selects at least one test."""

import shlex
import subprocess
import sys

import pytest

from cyrus_deb.cli import TOX_ENVS, cassandane_as_test, parser, tox_command
from cyrus_deb.paths import REPO_ROOT


def readme_commands() -> list[list[str]]:
    commands = []
    for line in (REPO_ROOT / "README.md").read_text().splitlines():
        if line.startswith("./cyrus-deb "):
            commands.append(shlex.split(line, comments=True)[1:])
    return commands


def tox_commands_shown(env: str) -> str:
    """What `tox config` shows of `env`'s commands, POSARGS standing where {posargs} goes."""
    return subprocess.run(
        [sys.executable, "-m", "tox", "config", "-e", env, "-k", "commands", "--", "POSARGS"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def tox_commands_of(env: str) -> list[str]:
    """The single command line tox resolves for `env`, POSARGS standing where {posargs} goes."""
    shown = tox_commands_shown(env)
    line = next(line for line in shown.splitlines() if line.startswith("commands = "))
    return shlex.split(line.removeprefix("commands = "))


def pytest_command_of(env: str, posargs: list[str]) -> list[str]:
    """The pytest line tox runs for `env`, with {posargs} filled in; without its JUnit
    report, which a collection must not overwrite."""
    words = [word for word in tox_commands_of(env) if not word.startswith("--junitxml=")]
    assert words[0] == "pytest", f"tox env {env} does not run pytest: {words}"
    at = words.index("POSARGS")
    return [sys.executable, "-m", *words[:at], *posargs, *words[at + 1 :]]


def test_readme_shows_the_build_and_test_commands():
    assert readme_commands()[:2] == [["build"], ["test"]]


@pytest.mark.parametrize("words", readme_commands(), ids=" ".join)
def test_readme_command_parses(words):
    parser().parse_args(words)  # argparse exits on anything it does not accept


SELECTIONS = [
    words for words in readme_commands() if words[:1] in (["test"], ["cassandane"]) and words[1:]
]


@pytest.mark.parametrize("words", SELECTIONS, ids=" ".join)
def test_readme_test_selection_reaches_pytest_and_selects_tests(words):
    args = parser().parse_args(words)
    if words[0] == "cassandane":
        args = cassandane_as_test(args)
    command = tox_command(args)
    posargs = command[command.index("--") + 1 :] if "--" in command else []
    assert "--" not in posargs, command
    for env in command[command.index("-e") + 1].split(","):
        if env == "lint":
            assert "POSARGS" not in tox_commands_shown(env), "lint takes no pytest arguments"
            continue
        collected = subprocess.run(
            [*pytest_command_of(env, posargs), "--collect-only", "-q"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert collected.returncode == 0, collected.stdout + collected.stderr
        assert " selected" in collected.stdout or " collected" in collected.stdout, collected


@pytest.mark.parametrize("env", [env for env in TOX_ENVS.split(",") if env != "lint"])
def test_every_test_environment_writes_a_junit_report_of_its_own(env):
    words = tox_commands_of(env)
    assert f"--junitxml={REPO_ROOT}/build/reports/junit-{env}.xml" in words
