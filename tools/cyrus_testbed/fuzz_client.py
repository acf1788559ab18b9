"""A seeded generator of hostile command lines, copied into the container and run there
against 127.0.0.1 (standard library only), so that services listening on loopback alone
(LMTP over TCP, ManageSieve) are reached as well.

usage: python3 fuzz_client.py PROTOCOL PORT SEED CASES DEADLINE_S

Each case is one command line: a real verb of the protocol, or garbage, with arguments
drawn from the shapes parsers get wrong (literals whose size lies, huge numbers,
unbalanced quotes and parentheses, NUL and 8-bit bytes, long lines), sent without waiting
for the server to agree. Sessions hold up to 20 cases; a session the server closes is
counted and a new one opened. Stops after CASES cases or DEADLINE_S seconds, and prints
one JSON object: cases sent, sessions, sessions the server closed, replies seen.
"""

import json
import random
import socket
import sys
import time

VERBS = {
    "imap": [
        "CAPABILITY", "NOOP", "LOGIN", "AUTHENTICATE PLAIN", "SELECT", "EXAMINE", "LIST",
        "LSUB", "STATUS", "APPEND", "FETCH", "UID FETCH", "SEARCH", "STORE", "COPY", "ID",
        "ENABLE", "IDLE", "GETMETADATA", "SETACL", "GETQUOTAROOT", "NAMESPACE", "LOGOUT",
    ],
    "pop3": [
        "USER", "PASS", "APOP", "STAT", "LIST", "RETR", "DELE", "TOP", "UIDL", "CAPA",
        "AUTH PLAIN", "RSET", "NOOP", "QUIT",
    ],
    "lmtp": [
        "LHLO", "MAIL FROM:", "RCPT TO:", "DATA", "RSET", "NOOP", "VRFY", "AUTH PLAIN",
        "BDAT", "QUIT",
    ],
    "sieve": [
        "AUTHENTICATE \"PLAIN\"", "CAPABILITY", "LISTSCRIPTS", "PUTSCRIPT", "GETSCRIPT",
        "SETACTIVE", "DELETESCRIPT", "HAVESPACE", "CHECKSCRIPT", "RENAMESCRIPT", "NOOP",
        "LOGOUT", "UNAUTHENTICATE",
    ],
}  # fmt: skip
# The commands that hand the connection over to TLS or hold it in a state the
# rest of a session would only wait in are left out: STARTTLS, STLS.


def argument(chooser: random.Random) -> bytes:
    shape = chooser.randrange(10)
    if shape == 0:
        return chooser.choice([b"INBOX", b"user/alice", b"*", b"%", b"1:*", b"alice", b"NIL"])
    if shape == 1:  # a quoted string, sometimes left open, with escapes
        body = bytes(chooser.choice(b'ab\\"%*') for _ in range(chooser.randrange(40)))
        return b'"' + body + (b'"' if chooser.random() < 0.7 else b"")
    if shape == 2:  # a literal whose announced size is wrong, huge, or non-synchronizing
        size = chooser.choice([0, 1, 10, 4096, 2**31 - 1, 2**32, 2**64, -1])
        plus = b"+" if chooser.random() < 0.5 else b""
        data = bytes(chooser.randrange(256) for _ in range(chooser.randrange(64)))
        return b"{" + str(size).encode() + plus + b"}\r\n" + data
    if shape == 3:  # parentheses, unbalanced or deep
        depth = chooser.randrange(1, 300)
        return b"(" * depth + b"FLAGS BODY[" + b")" * chooser.randrange(depth + 2)
    if shape == 4:  # NUL, control and 8-bit bytes
        return bytes(chooser.randrange(256) for _ in range(chooser.randrange(1, 200)))
    if shape == 5:  # a long line
        return chooser.choice([b"A", b"%", b"(", b"\\"]) * chooser.randrange(1000, 70000)
    if shape == 6:
        return chooser.choice([b"-1", b"0", b"4294967296", b"99999999999999999999", b"1e9"])
    if shape == 7:
        return chooser.choice([b"0:0", b"*:1", b"1,,2", b"4294967295:1", b"1:" * 500])
    if shape == 8:
        return bytes(chooser.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ+/=") for _ in range(120))
    return b"<" + argument(chooser) + b">"


def command(protocol: str, chooser: random.Random) -> bytes:
    if chooser.random() < 0.1:
        line = bytes(chooser.randrange(256) for _ in range(chooser.randrange(1, 300)))
    else:
        verb = chooser.choice(VERBS[protocol]).encode()
        arguments = [argument(chooser) for _ in range(chooser.randrange(4))]
        line = b" ".join([verb, *arguments])
        if protocol == "imap":
            line = chooser.choice([b"a1 ", b"* ", b"+ ", b"", b"\x00 "]) + line
    return line + chooser.choice([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])


def main() -> None:
    protocol, port, seed, cases, deadline_s = sys.argv[1:]
    chooser = random.Random(f"{seed}-{protocol}")
    deadline = time.monotonic() + float(deadline_s)
    sent = sessions = closed_by_server = replies = 0
    while sent < int(cases) and time.monotonic() < deadline:
        sessions += 1
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as connection:
            connection.settimeout(0.05)
            try:
                for _ in range(chooser.randrange(1, 21)):
                    if sent >= int(cases):
                        break
                    connection.sendall(command(protocol, chooser))
                    sent += 1
                    try:
                        if connection.recv(65536) == b"":
                            closed_by_server += 1
                            break
                        replies += 1
                    except TimeoutError:
                        pass
            except (ConnectionResetError, BrokenPipeError):
                closed_by_server += 1
    summary = {"cases": sent, "sessions": sessions, "closed_by_server": closed_by_server}
    print(json.dumps(summary | {"replies": replies}))


if __name__ == "__main__":
    main()
