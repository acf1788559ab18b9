"""A minimal LMTP client, copied into the container and run there against the unix socket.

usage: python3 lmtp_client.py SOCKET SENDER RECIPIENT... < message
Prints one JSON object: the reply to each RCPT TO and, per accepted
recipient, the reply after DATA (RFC 2033 gives one per recipient).
"""

import json
import socket
import sys


def main() -> None:
    path, sender, *recipients = sys.argv[1:]
    message = sys.stdin.buffer.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(30)
    connection.connect(path)
    stream = connection.makefile("rb")

    def reply() -> str:
        lines = []
        while True:
            line = stream.readline().decode().rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def command(text: str) -> str:
        connection.sendall(text.encode() + b"\r\n")
        return reply()

    result = {"greeting": reply(), "lhlo": command("LHLO client.test")}
    result["mail"] = command(f"MAIL FROM:<{sender}>")
    result["rcpt"] = {r: command(f"RCPT TO:<{r}>") for r in recipients}
    accepted = [r for r in recipients if result["rcpt"][r].startswith("2")]
    result["data"] = {}
    if accepted:
        result["data_start"] = command("DATA")
        if result["data_start"].startswith("354"):
            body = b"\r\n".join(
                b"." + line if line.startswith(b".") else line for line in message.split(b"\r\n")
            )
            connection.sendall(body.rstrip(b"\r\n") + b"\r\n.\r\n")
            result["data"] = {r: reply() for r in accepted}
    command("QUIT")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
