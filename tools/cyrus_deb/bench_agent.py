"""The benchmark's half that runs inside a container, beside lmtp_client.py (standard library).

usage: python3 bench_agent.py lmtp-load SOCKET RECIPIENT COUNT CONNECTIONS SEED
       python3 bench_agent.py idle-latency SOCKET USER PASSWORD
Prints one JSON object. Timing happens here, so `docker exec` costs nothing.
"""

import imaplib
import json
import multiprocessing
import random
import ssl
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate

from lmtp_client import Session

IDLE_WAIT_S = 70  # longer than the default imapidlepoll of 60 s


def message(chooser: random.Random, number: int, tag: str) -> bytes:
    """About 4 KB of text, different each time; a unique Message-ID, or lmtpd drops it."""
    words = [
        "".join(chooser.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(chooser.randint(2, 9)))
        for _ in range(chooser.randint(500, 800))
    ]
    mail = EmailMessage()
    mail["From"] = "bench@example.test"
    mail["To"] = "reader@example.test"
    mail["Subject"] = f"bench {tag} {number}"
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = f"<{tag}.{number}.{chooser.random()}@bench.example.test>"
    mail.set_content(" ".join(words) + "\n")
    return bytes(mail)


def deliver_batch(arguments: tuple[str, str, list[bytes]]) -> int:
    socket_path, recipient, messages = arguments
    session = Session(socket_path)
    delivered = 0
    for mail in messages:
        reply = session.deliver("bench@example.test", [recipient], mail)["data"].get(recipient, "")
        delivered += reply.startswith("250")
    session.close()
    return delivered


def lmtp_load(socket_path: str, recipient: str, count: str, connections: str, seed: str) -> dict:
    """COUNT messages to RECIPIENT over CONNECTIONS parallel LMTP connections; the
    messages are made and the workers started before the clock starts."""
    total, parallel = int(count), int(connections)
    chooser = random.Random(int(seed))
    tag = f"{seed}-{time.time_ns()}"
    messages = [message(chooser, n, tag) for n in range(total)]
    batches = [(socket_path, recipient, messages[n::parallel]) for n in range(parallel)]
    with multiprocessing.Pool(parallel) as pool:
        started = time.perf_counter()
        delivered = sum(pool.map(deliver_batch, batches))
        seconds = time.perf_counter() - started
    return {"delivered": delivered, "seconds": seconds}


def idle_latency(socket_path: str, user: str, password: str) -> dict:
    """Seconds from the end of an LMTP delivery to the EXISTS a client in IDLE receives."""
    imap = imaplib.IMAP4("127.0.0.1", 143, timeout=IDLE_WAIT_S)
    if "STARTTLS" in imap.capabilities:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        imap.starttls(context)
    imap.login(user, password)
    imap.select("INBOX")
    tag = imap._new_tag().decode()
    imap.send(f"{tag} IDLE\r\n".encode())
    if not imap.readline().startswith(b"+"):
        raise SystemExit("the server did not accept IDLE")
    chooser = random.Random(time.time_ns())
    session = Session(socket_path)
    session.deliver("bench@example.test", [user], message(chooser, 0, "idle"))
    delivered = time.perf_counter()
    session.close()
    try:
        while b"EXISTS" not in imap.readline():
            pass
    except TimeoutError:
        return {"seconds": None}
    seconds = time.perf_counter() - delivered
    imap.send(b"DONE\r\n")
    imap.logout()
    return {"seconds": seconds}


def main() -> None:
    command, *arguments = sys.argv[1:]
    actions = {"lmtp-load": lmtp_load, "idle-latency": idle_latency}
    print(json.dumps(actions[command](*arguments)))


if __name__ == "__main__":
    main()
