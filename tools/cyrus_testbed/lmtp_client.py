"""A minimal LMTP client, copied into the container and run there (standard library only).

usage: python3 lmtp_client.py [--auth USER PASSWORD] [--messages DIR]
                              ADDRESS SENDER RECIPIENT... [< message]
ADDRESS is a unix socket path, or HOST:PORT for TCP. With --auth the client
says STARTTLS and then AUTH PLAIN before MAIL FROM.
Prints one JSON object: the reply to each command and, per accepted
recipient, the reply after DATA (RFC 2033 gives one per recipient). With
--messages, every file in DIR is one transaction of the same session, in
name order, and the replies of each are printed as one JSON line (with the
file's name) the moment the server has answered, for a reader that must
know what was acknowledged even if the machine dies mid-stream.
smtplib.LMTP would read a single reply after DATA, so it cannot tell
recipients apart.
"""

import argparse
import base64
import json
import pathlib
import socket
import ssl
import sys


class Session:
    """One LMTP connection, for as many transactions as the caller wants."""

    def __init__(self, address: str) -> None:
        if address.startswith("/"):
            self.connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.connection.settimeout(30)
            self.connection.connect(address)
        else:
            host, _, port = address.rpartition(":")
            self.connection = socket.create_connection((host, int(port)), timeout=30)
        self.stream = self.connection.makefile("rb")
        self.replies: dict = {"greeting": self.reply(), "lhlo": self.command("LHLO client.test")}

    def reply(self) -> str:
        lines = []
        while True:
            line = self.stream.readline().decode().rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def command(self, text: str) -> str:
        self.connection.sendall(text.encode() + b"\r\n")
        return self.reply()

    def authenticate(self, user: str, password: str) -> None:
        self.replies["starttls"] = self.command("STARTTLS")
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self.connection = context.wrap_socket(self.connection)
        self.stream = self.connection.makefile("rb")
        self.replies["lhlo_tls"] = self.command("LHLO client.test")
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.replies["auth"] = self.command(f"AUTH PLAIN {token}")

    def deliver(self, sender: str, recipients: list[str], message: bytes) -> dict:
        """One transaction; the replies to MAIL, each RCPT and, per recipient, DATA."""
        message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        result: dict = {"mail": self.command(f"MAIL FROM:<{sender}>")}
        result["rcpt"] = {r: self.command(f"RCPT TO:<{r}>") for r in recipients}
        accepted = [r for r in recipients if result["rcpt"][r].startswith("2")]
        result["data"] = {}
        if accepted:
            result["data_start"] = self.command("DATA")
            if result["data_start"].startswith("354"):
                lines = message.split(b"\r\n")
                body = b"\r\n".join(
                    b"." + line if line.startswith(b".") else line for line in lines
                )
                self.connection.sendall(body.rstrip(b"\r\n") + b"\r\n.\r\n")
                result["data"] = {r: self.reply() for r in accepted}
        else:
            self.command("RSET")
        return result

    def close(self) -> None:
        self.command("QUIT")
        self.connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--auth", nargs=2, metavar=("USER", "PASSWORD"))
    parser.add_argument("--messages", type=pathlib.Path, metavar="DIR")
    parser.add_argument("address")
    parser.add_argument("sender")
    parser.add_argument("recipients", nargs="+")
    arguments = parser.parse_args()
    session = Session(arguments.address)
    if arguments.auth:
        session.authenticate(*arguments.auth)
    if arguments.messages:
        for path in sorted(arguments.messages.iterdir()):
            result = session.deliver(arguments.sender, arguments.recipients, path.read_bytes())
            print(json.dumps({"file": path.name} | result), flush=True)
        session.close()
        return
    result = session.replies | session.deliver(
        arguments.sender, arguments.recipients, sys.stdin.buffer.read()
    )
    session.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
