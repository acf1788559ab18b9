"""The Debian mirror this host's apt is configured with."""

from pathlib import Path

from debian.deb822 import Deb822

from .errors import UserError

APT_SOURCES = Path("/etc/apt")


def _one_line_entries(path: Path) -> list[tuple[str, list[str]]]:
    entries = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0]
        # Drop the options in "deb [arch=amd64 signed-by=...] URI SUITE ...".
        head, bracket, rest = line.partition("[")
        words = (head + rest.partition("]")[2]).split() if bracket else line.split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], [words[2]]))
    return entries


def _deb822_entries(path: Path) -> list[tuple[str, list[str]]]:
    entries: list[tuple[str, list[str]]] = []
    with path.open() as handle:
        for stanza in Deb822.iter_paragraphs(handle):
            if "deb" not in stanza.get("Types", "").split():
                continue
            suites = stanza.get("Suites", "").split()
            entries.extend((uri, suites) for uri in stanza.get("URIs", "").split())
    return entries


def host_mirror(apt_dir: Path = APT_SOURCES) -> str:
    """The first configured Debian archive (not security, not a third party)."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if path.suffix == ".sources":
            entries = _deb822_entries(path)
        elif path.suffix == ".list" or path.name == "sources.list":
            entries = _one_line_entries(path) if path.exists() else []
        else:
            continue
        for uri, suites in entries:
            if uri.rstrip("/").endswith("/debian") and not any(
                suite.endswith("-security") for suite in suites
            ):
                return uri.rstrip("/")
    raise UserError(
        f"No Debian mirror found in {apt_dir}/sources.list or sources.list.d/.\n"
        "Add one (for example a deb822 .sources file with URIs: <your mirror>/debian)."
    )
