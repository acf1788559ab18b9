"""What README.Debian shows an administrator, read as they would copy it: the indented
block that follows a line of the text."""

import textwrap

from cyrus_deb.paths import REPO_ROOT

README_DEBIAN = REPO_ROOT / "debian" / "cyrus-common.README.Debian"


def block_after(line: str) -> str:
    """The indented block that follows `line`, as the file it shows."""
    text = README_DEBIAN.read_text()
    assert line in text, f"README.Debian no longer says {line!r}"
    # Another section may come to say the same words: which block was meant must not
    # depend on which section comes first.
    assert text.count(line) == 1, f"README.Debian says {line!r} more than once: name a longer line"
    return textwrap.dedent(text.split(line, 1)[1].split("\n\n", 2)[1]) + "\n"


def imapd_conf_lines(block: str) -> dict[str, str]:
    """README.Debian's imapd.conf lines, as options."""
    options = {}
    for line in block.splitlines():
        key, separator, value = line.partition(":")
        assert separator, f"not an imapd.conf line: {line!r}"
        options[key.strip()] = value.strip()
    return options


def commands_after(line: str) -> list[str]:
    """The commands of the indented block that follows `line`, one per line."""
    return [command.strip() for command in block_after(line).splitlines() if command.strip()]
