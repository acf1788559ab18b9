"""The benchmark's half that runs inside a container, beside lmtp_client.py (standard library).

usage: python3 bench_agent.py lmtp-load SOCKET RECIPIENT COUNT CONNECTIONS SEED
       python3 bench_agent.py idle-latency SOCKET USER PASSWORD
       python3 bench_agent.py fetch USER PASSWORD SERVER_PROCESS SINGLE_FETCHES
Prints one JSON object. Timing happens here, so `docker exec` costs nothing.
"""

import imaplib
import json
import multiprocessing
import os
import random
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
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


def logged_in(user: str, password: str, timeout: float) -> imaplib.IMAP4:
    """A client on the server's own host, as webmail often is: 127.0.0.1, STARTTLS."""
    imap = imaplib.IMAP4("127.0.0.1", 143, timeout=timeout)
    if "STARTTLS" in imap.capabilities:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        imap.starttls(context)
    imap.login(user, password)
    return imap


def cpu_seconds(process_name: str) -> float:
    """User and system time of every process of that name, as the kernel counts it."""
    pids = subprocess.run(["pgrep", "-x", process_name], capture_output=True, text=True).stdout
    ticks = 0
    for pid in pids.split():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # ended between pgrep and here
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def fetch(user: str, password: str, server_process: str, single_fetches: str) -> dict:
    """FETCH BODY.PEEK[] of the whole INBOX in one command, then of its first messages one
    command each; the CPU time the server's processes spent on the first."""
    imap = logged_in(user, password, timeout=120)
    imap.select("INBOX", readonly=True)
    cpu_before, started = cpu_seconds(server_process), time.perf_counter()
    _, data = imap.fetch("1:*", "(BODY.PEEK[])")
    seconds, cpu = time.perf_counter() - started, cpu_seconds(server_process) - cpu_before
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    started = time.perf_counter()
    for number in range(1, int(single_fetches) + 1):
        imap.fetch(str(number), "(BODY.PEEK[])")
    single_seconds = time.perf_counter() - started
    imap.logout()
    return {
        "messages": len(bodies),
        "bytes": sum(len(body) for body in bodies),
        "seconds": seconds,
        "server_cpu_seconds": cpu,
        "single_seconds": single_seconds,
    }


def idle_latency(socket_path: str, user: str, password: str) -> dict:
    """Seconds from the end of an LMTP delivery to the EXISTS a client in IDLE receives."""
    imap = logged_in(user, password, timeout=IDLE_WAIT_S)
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
    actions: dict[str, Callable[..., dict]] = {
        "lmtp-load": lmtp_load,
        "idle-latency": idle_latency,
        "fetch": fetch,
    }
    print(json.dumps(actions[command](*arguments)))


if __name__ == "__main__":
    main()
