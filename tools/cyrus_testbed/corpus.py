"""Messages of varied MIME structure, the same bytes for the same seed: the mail a store to
upgrade or to crash holds. Plain and 8-bit text, quoted-printable and base64, HTML
alternatives, binary attachments, inline images and forwarded messages."""

import datetime
import random
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime

WORDS = [
    "mail",
    "server",
    "upgrade",
    "folder",
    "quota",
    "sieve",
    "flag",
    "index",
    "spool",
    "partition",
    "Grüße",
    "déjà-vu",
    "naïve",
    "smörgåsbord",
    "東京",
    "привет",
    "ünïcödé",
    "☃",
    "report",
    "meeting",
    "invoice",
]
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _text(chooser: random.Random, words: int) -> str:
    lines, line = [], []
    for _ in range(words):
        line.append(chooser.choice(WORDS))
        if len(line) > chooser.randint(6, 14):
            lines.append(" ".join(line))
            line = []
    return "\n".join([*lines, " ".join(line)]) + "\n"


def _ascii(chooser: random.Random, words: int) -> str:
    return _text(chooser, words).encode("ascii", "replace").decode().replace("?", "x")


def _plain(message: EmailMessage, chooser: random.Random) -> None:
    message.set_content(_ascii(chooser, chooser.randint(20, 3000)))


def _eight_bit(message: EmailMessage, chooser: random.Random) -> None:
    message.set_content(
        _text(chooser, chooser.randint(20, 800)), cte=chooser.choice(["8bit", "quoted-printable"])
    )


def _alternative(message: EmailMessage, chooser: random.Random) -> None:
    text = _text(chooser, chooser.randint(20, 400))
    message.set_content(text)
    message.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")


def _attachment(message: EmailMessage, chooser: random.Random) -> None:
    message.set_content(_ascii(chooser, 40))
    kind = chooser.choice([("application", "pdf", "report.pdf"), ("image", "png", "Bild ä.png")])
    message.add_attachment(
        chooser.randbytes(chooser.randint(100, 60_000)),
        maintype=kind[0],
        subtype=kind[1],
        filename=kind[2],
    )


def _inline_image(message: EmailMessage, chooser: random.Random) -> None:
    message.set_content(_ascii(chooser, 30))
    message.add_alternative('<html><body><img src="cid:logo@corpus"></body></html>', subtype="html")
    html = list(message.iter_parts())[1]
    assert isinstance(html, EmailMessage)
    html.add_related(chooser.randbytes(2_000), "image", "gif", cid="<logo@corpus>")


def _forwarded(message: EmailMessage, chooser: random.Random) -> None:
    inner = EmailMessage()
    inner["From"] = "origin@example.test"
    inner["Subject"] = "the original"
    inner.set_content(_text(chooser, 60))
    message.set_content("Forwarded below.\n")
    message.add_attachment(inner)


KINDS: list[Callable[[EmailMessage, random.Random], None]] = [
    _plain,
    _eight_bit,
    _alternative,
    _attachment,
    _inline_image,
    _forwarded,
]


def varied_messages(seed: int, count: int, recipient: str, tag: str = "") -> list[bytes]:
    """`count` messages for `recipient`, every MIME kind in turn at random sizes; the
    Message-IDs are unique per seed, recipient and number (Cyrus keeps one copy of a
    Message-ID per mailbox)."""
    chooser = random.Random(f"{seed}-{recipient}-{tag}")
    messages = []
    for number in range(count):
        message = EmailMessage()
        message["From"] = chooser.choice(["Jörg <joerg@example.test>", "list@example.test"])
        message["To"] = f"{recipient}@example.test"
        message["Subject"] = f"{tag}{recipient} {number}: {' '.join(chooser.sample(WORDS, 3))}"
        message["Date"] = format_datetime(EPOCH + datetime.timedelta(minutes=number))
        # No space in it: Cyrus's duplicate suppression reads the Message-ID up to one.
        label = "-".join(tag.split())
        message["Message-ID"] = f"<{seed}.{recipient}.{label}.{number}@corpus.example.test>"
        KINDS[number % len(KINDS)](message, chooser)
        # The email package draws MIME boundaries from the global random generator.
        for index, part in enumerate(message.walk()):
            if part.is_multipart():
                part.set_boundary(f"=_corpus_{seed}_{number}_{index}")
        messages.append(bytes(message))
    return messages
