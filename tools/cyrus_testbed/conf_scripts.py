"""debian/scripts/cyrus-assemble-conf run on this machine, on fragments and a directory of
stand-in programs: the unit tests of the assembler and of the configuration migration."""

import subprocess
from pathlib import Path

from cyrus_deb.paths import DEBIAN_DIR

ASSEMBLER = DEBIAN_DIR / "scripts" / "cyrus-assemble-conf"
SHIPPED_FRAGMENTS = DEBIAN_DIR / "conf" / "cyrus.conf.d"


def assemble(fragments: Path, programs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["perl", str(ASSEMBLER), str(fragments), str(programs)], capture_output=True, text=True
    )


def install_programs(directory: Path, *names: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name in names:
        program = directory / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    return directory


def entries(config: str) -> list[str]:
    lines = config.splitlines()
    return [line.split()[0] for line in lines if line.startswith("  ") and "=" in line]
