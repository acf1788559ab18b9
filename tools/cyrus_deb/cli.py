"""The single command line: cyrus-deb fetch-orig | images | build | check-reproducible | test
| bench | bench-build."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from .build import build_packages
from .engine import docker_client
from .errors import UserError
from .images import DISTRIBUTIONS, INIT_SYSTEMS, flavour_image
from .paths import PACKAGES_DIR, REPO_ROOT
from .progress import phase, say
from .reproducible import reprotest
from .upstream import fetch_orig

TOX_ENVS = "lint,unit,bench-guard,integration,upgrade,faults,cluster,dep8,piuparts,reproducible"
# Environments with nothing quick to pick out: the benchmark's guard, reprotest's one long
# build, and the cluster's machines, which need a populated primary before their first test.
NOT_QUICK = ("bench-guard", "reproducible", "cluster")
# The environments' machines mostly wait (on apt, on a boot, on a socket): three at once
# keep this 2-core machine busy without starving a test of its time limit.
PARALLEL_ENVS = 3


def _fetch_orig(args: argparse.Namespace) -> int:
    say(f"verified {fetch_orig(args.output)}")
    return 0


def _images(args: argparse.Namespace) -> int:
    client = docker_client()
    for distribution in args.distribution or DISTRIBUTIONS:
        for init in args.init or INIT_SYSTEMS:
            say(f"{distribution}-{init}: {flavour_image(client, distribution, init)}")
    return 0


def _build(args: argparse.Namespace) -> int:
    with phase("the whole build"):
        build_packages(args.output, check=not args.nocheck)
    return 0


def _check_reproducible(args: argparse.Namespace) -> int:
    if not any(args.output.glob("*.dsc")):
        build_packages(args.output)
    result = reprotest(docker_client(), args.output, REPO_ROOT / "build" / "reports" / "reprotest")
    verdict = "reproducible" if result.reproducible else "NOT REPRODUCIBLE (diffoscope's report)"
    say(f"{verdict}: {result.report_dir}")
    return 0 if result.reproducible else 1


def tox_command(args: argparse.Namespace) -> list[str]:
    """The tox run that `cyrus-deb test` makes; what follows `--` goes to pytest. Several
    environments run in tox's parallel mode, each one's output shown whole as it ends."""
    envs = args.envs
    if args.quick:
        envs = ",".join(env for env in envs.split(",") if env not in NOT_QUICK)
        if not envs:
            raise UserError(f"--quick selects no test in {args.envs}: run it without --quick")
    if args.jobs > 1 and "," in envs:
        command = ["tox", "run-parallel", f"--parallel={args.jobs}", "--parallel-no-spinner"]
    else:
        command = ["tox", "run"]
    command += ["-e", envs]
    # argparse's REMAINDER keeps the `--` that separates our options from pytest's.
    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    if args.quick:
        pytest_args = ["-m", "quick", *pytest_args]
    if pytest_args:
        command += ["--", *pytest_args]
    return command


def _test(args: argparse.Namespace) -> int:
    command = tox_command(args)
    say(" ".join(command))
    return subprocess.run(command, cwd=REPO_ROOT, check=False, env=os.environ.copy()).returncode


def cassandane_as_test(args: argparse.Namespace) -> argparse.Namespace:
    """`cyrus-deb cassandane SUITE...` is the dep8 environment's Cassandane test, narrowed."""
    selection = [f"--cassandane-suites={suite}" for suite in args.suites]
    return argparse.Namespace(
        envs="dep8", jobs=1, quick=False, pytest_args=["-k", "cassandane", *selection]
    )


def _cassandane(args: argparse.Namespace) -> int:
    return _test(cassandane_as_test(args))


def _bench(args: argparse.Namespace) -> int:
    # testcontainers is only needed here
    from .bench import guard_failures, render, run_bench, run_guard, saved

    if not (args.packages / "Packages").exists():
        raise UserError(f"no built packages in {args.packages}: run `./cyrus-deb build` first")
    if args.guard:
        results = run_guard(docker_client(), args.packages)
    else:
        results = run_bench(docker_client(), args.packages, args.reference, args.rounds)
    print(render(results))
    path = saved(results, args.output, "bench-guard" if args.guard else "bench")
    say(f"figures written to {path}, plotted in {path.with_suffix('.png')}")
    failures = guard_failures(results) if args.guard else []
    for failure in failures:
        print(f"cyrus-deb: bench guard: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _bench_build(args: argparse.Namespace) -> int:
    from .build_bench import render, run_build_bench

    results = run_build_bench(args.rounds, args.output / "build-logs")
    print(render(results))
    path = args.output / f"build-{results.started.replace(':', '')}.json"
    path.write_text(json.dumps(results.as_json(), indent=2) + "\n")
    say(f"figures written to {path}, sbuild's logs in {args.output / 'build-logs'}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cyrus-deb", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    fetch = commands.add_parser("fetch-orig", help="fetch and verify the upstream tarball")
    fetch.add_argument("--output", type=Path, default=PACKAGES_DIR.parent / "orig")
    fetch.set_defaults(run=_fetch_orig)

    images = commands.add_parser("images", help="make the base and init images")
    images.add_argument("--distribution", action="append", choices=DISTRIBUTIONS)
    images.add_argument("--init", action="append", choices=INIT_SYSTEMS)
    images.set_defaults(run=_images)

    build = commands.add_parser("build", help="build all packages in a clean trixie container")
    build.add_argument("--output", type=Path, default=PACKAGES_DIR)
    build.add_argument("--nocheck", action="store_true", help="skip upstream's unit tests")
    build.set_defaults(run=_build)

    repro = commands.add_parser(
        "check-reproducible",
        help="rebuild with reprotest's variations and compare with diffoscope",
    )
    repro.add_argument("--output", type=Path, default=PACKAGES_DIR)
    repro.set_defaults(run=_check_reproducible)

    test = commands.add_parser("test", help="run the test suite through tox")
    test.add_argument("--envs", default=TOX_ENVS, help=f"tox environments (default {TOX_ENVS})")
    test.add_argument(
        "--quick",
        action="store_true",
        help="a developer's loop: every unit test, and a few tests of each suite on both inits",
    )
    test.add_argument(
        "--jobs",
        type=int,
        default=PARALLEL_ENVS,
        help=f"environments run at once (default {PARALLEL_ENVS}; 1: one after the other,"
        " their output streamed as it comes)",
    )
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to pytest after --")
    test.set_defaults(run=_test)

    cassandane = commands.add_parser(
        "cassandane",
        help="run upstream's Cassandane against the installed packages in a trixie container"
        " (debian/tests/cassandane, through tox)",
    )
    cassandane.add_argument(
        "suites",
        nargs="*",
        help="Cassandane suites or tests, e.g. Cyrus::Quota (default: debian/tests/cassandane's)",
    )
    cassandane.set_defaults(run=_cassandane)

    bench = commands.add_parser(
        "bench", help="measure our packages against Debian's, side by side, interleaved"
    )
    bench.add_argument(
        "--reference",
        default="trixie-backports",
        choices=("trixie-backports", "trixie", "dovecot"),
        help="an archive suite whose cyrus-imapd is the reference, or Dovecot from trixie"
        " (default trixie-backports)",
    )
    bench.add_argument("--rounds", type=int, default=3, help="rounds of every figure (default 3)")
    bench.add_argument(
        "--guard",
        action="store_true",
        help="the short form CI runs: the hot path's figures alone against trixie-backports,"
        " 7 rounds; fails when one is at 0.85 of Debian's or below",
    )
    bench.add_argument("--packages", type=Path, default=PACKAGES_DIR)
    bench.add_argument("--output", type=Path, default=PACKAGES_DIR.parent / "bench")
    bench.set_defaults(run=_bench)

    bench_build = commands.add_parser(
        "bench-build",
        help="time our sbuild build against Debian's own cyrus-imapd, built the same way here",
    )
    bench_build.add_argument("--rounds", type=int, default=1, help="builds of each (default 1)")
    bench_build.add_argument("--output", type=Path, default=PACKAGES_DIR.parent / "bench")
    bench_build.set_defaults(run=_bench_build)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as error:
        print(f"cyrus-deb: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cyrus-deb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
