"""The generated mail the upgrade and fault tests deliver: the same bytes for the same seed,
and Message-IDs Cyrus's duplicate suppression tells apart."""

import email

from cyrus_testbed.corpus import varied_messages


def message_ids(messages: list[bytes]) -> list[str]:
    return [email.message_from_bytes(message)["Message-ID"] for message in messages]


def test_the_same_seed_gives_the_same_bytes():
    assert varied_messages(7, 12, "alice", tag="x ") == varied_messages(7, 12, "alice", tag="x ")


def test_message_ids_are_unique_and_hold_no_space_across_tags_and_recipients():
    ids = [
        *message_ids(varied_messages(7, 30, "alice", tag="power cut ")),
        *message_ids(varied_messages(7, 30, "alice", tag="master killed ")),
        *message_ids(varied_messages(7, 30, "bob")),
    ]
    assert len(set(ids)) == len(ids)
    assert not [i for i in ids if " " in i]


def test_every_mime_kind_is_generated():
    kinds = {
        email.message_from_bytes(message).get_content_type()
        for message in varied_messages(7, 6, "alice")
    }
    assert kinds == {"text/plain", "multipart/alternative", "multipart/mixed"}
