"""The document table that integration runs are checked against, and imapd.conf editing."""

from pathlib import Path

from cyrus_testbed.behaviour_table import END, START, differences, read_table, write_table
from cyrus_testbed.server_config import with_options

DOCUMENT = Path(__file__).parents[1] / "integration" / "README.md"


def document_with(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "README.md"
    path.write_text(
        f"intro\n{START}\n| behaviour | a-systemd | a-sysvinit |\n|---|---|---|\n{rows}{END}\nend\n"
    )
    return path


def test_observations_that_match_the_table_are_not_differences(tmp_path):
    path = document_with(tmp_path, "| stop | closed | closed |\n")
    assert differences(path, {"stop": {"a-systemd": "closed", "a-sysvinit": "closed"}}) == []


def test_a_changed_or_new_observation_is_named_with_its_target(tmp_path):
    path = document_with(tmp_path, "| stop | closed | closed |\n")
    found = differences(path, {"stop": {"a-sysvinit": "open"}, "new": {"a-systemd": "x"}})
    assert found == [
        "not in the table: 'new' [a-systemd] observed 'x'",
        "'stop' [a-sysvinit]: the table says 'closed', observed 'open'",
    ]


def test_writing_merges_observations_and_keeps_the_text_around_the_table(tmp_path):
    path = document_with(tmp_path, "| stop | closed | closed |\n")
    write_table(path, {"b | pipe": {"a-systemd": "x|y"}, "stop": {"a-sysvinit": "open"}})
    assert path.read_text().startswith("intro\n") and path.read_text().endswith(f"{END}\nend\n")
    _, table = read_table(path)
    assert table == {
        "b | pipe": {"a-systemd": "x|y", "a-sysvinit": ""},
        "stop": {"a-systemd": "closed", "a-sysvinit": "open"},
    }


def test_the_committed_document_has_a_readable_table():
    targets, table = read_table(DOCUMENT)
    assert targets == ["trixie-systemd", "trixie-sysvinit"]
    assert all(set(row) == set(targets) for row in table.values())


def test_with_options_replaces_a_key_in_place_and_appends_a_new_one():
    conf = "admins: cyrus\nimapidlepoll: 60\n"
    assert with_options(conf, {"imapidlepoll": "0", "altnamespace": "no"}) == (
        "admins: cyrus\nimapidlepoll: 0\naltnamespace: no\n"
    )
