"""Phase-by-phase progress lines with durations, on standard error."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    print(f"cyrus-deb: {message}", file=sys.stderr, flush=True)


@contextmanager
def phase(name: str) -> Iterator[None]:
    say(f"{name} ...")
    start = time.monotonic()
    try:
        yield
    except BaseException:
        say(f"{name} FAILED after {time.monotonic() - start:.1f} s")
        raise
    say(f"{name} done in {time.monotonic() - start:.1f} s")
