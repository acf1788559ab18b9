"""The table of behaviour per init system in tests/integration/README.md.

Tests record what they observed; at the end of a run every observation is
compared with the table, so the document cannot go stale and a behaviour
that changes on one init system fails the run with the difference spelled out.
"""

import re
from pathlib import Path

START = "<!-- behaviour-table:start -->"
END = "<!-- behaviour-table:end -->"

Table = dict[str, dict[str, str]]  # behaviour -> target -> value


def read_table(document: Path) -> tuple[list[str], Table]:
    """The target columns and the rows between the markers."""
    text = document.read_text()
    body = text.split(START, 1)[1].split(END, 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    targets = header[1:]
    table: Table = {}
    for row in rows[2:]:
        cells = [
            cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row.strip("|"))
        ]
        table[cells[0]] = dict(zip(targets, cells[1:], strict=True))
    return targets, table


def render_table(targets: list[str], table: Table) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| behaviour | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
    for behaviour in sorted(table):
        values = [cell(table[behaviour].get(target, "")) for target in targets]
        lines.append(f"| {cell(behaviour)} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def write_table(document: Path, observed: Table) -> None:
    """Merge the observations into the document's table and write it back."""
    targets, table = read_table(document)
    for target in sorted({t for values in observed.values() for t in values} - set(targets)):
        targets.append(target)
    for behaviour, values in observed.items():
        table.setdefault(behaviour, {}).update(values)
    text = document.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    document.write_text(f"{head}{START}\n{render_table(targets, table)}\n{END}{tail}")


def differences(document: Path, observed: Table) -> list[str]:
    """One line per observation the document does not state."""
    _, table = read_table(document)
    lines = []
    for behaviour in sorted(observed):
        for target, value in sorted(observed[behaviour].items()):
            documented = table.get(behaviour, {}).get(target)
            if documented is None:
                lines.append(f"not in the table: {behaviour!r} [{target}] observed {value!r}")
            elif documented != value:
                lines.append(
                    f"{behaviour!r} [{target}]: the table says {documented!r}, observed {value!r}"
                )
    return lines
