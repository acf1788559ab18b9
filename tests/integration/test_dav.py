"""The HTTP service of cyrus-caldav as clients use it, with the shipped imapd.conf: a CalDAV
client (PyPI caldav) makes a calendar and an event, a CardDAV address book takes a contact;
JMAP, off as shipped, once README.Debian's commands turn it on, sees the mailbox, the event
and the mail delivered before; all with passwords inside TLS on 8443."""

import base64
import http.client
import json

import pytest
from caldav.davclient import DAVClient

from cyrus_testbed.boot import CyrusServer
from cyrus_testbed.clients import lmtp_deliver, make_message, tls_context
from cyrus_testbed.readme_debian import commands_after
from cyrus_testbed.server_config import IMAPD_CONF, restart, wait_until_serving

pytestmark = pytest.mark.integration

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//cyrus-deb tests//EN\r\n"
    "BEGIN:VEVENT\r\nUID:planning-1@example.test\r\nDTSTAMP:20261202T100000Z\r\n"
    "DTSTART:20261203T100000Z\r\nDTEND:20261203T110000Z\r\nSUMMARY:Planning\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
CONTACT = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:carol-1@example.test\r\nN:Example;Carol;;;\r\n"
    "FN:Carol Example\r\nEMAIL:carol@example.test\r\nEND:VCARD\r\n"
)
ADDRESS_BOOK = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>'
    "<D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>"
    "<D:displayname>Contacts</D:displayname></D:prop></D:set></D:mkcol>"
)


def https_url(server: CyrusServer, path: str) -> str:
    return f"https://127.0.0.1:{server.machine.port(8443)}{path}"


def dav_client(server: CyrusServer, user: str) -> DAVClient:
    """A DAV client of `user` at their calendar home; the snakeoil certificate is not
    verified (it names the container)."""
    return DAVClient(
        url=https_url(server, f"/dav/calendars/user/{user}/"),
        username=user,
        password=server.users.passwords[user],
        ssl_verify_cert=False,
    )


def jmap_request(server: CyrusServer, user: str, calls: list) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one JMAP request with Basic authentication."""
    credentials = f"{user}:{server.users.passwords[user]}".encode()
    body = json.dumps(
        {
            "using": [
                "urn:ietf:params:jmap:core",
                "urn:ietf:params:jmap:mail",
                "urn:ietf:params:jmap:calendars",
            ],
            "methodCalls": calls,
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Basic " + base64.b64encode(credentials).decode(),
    }
    return body, headers


def jmap_response(server: CyrusServer, user: str, calls: list) -> http.client.HTTPResponse:
    """The answer to one JMAP request over TLS on 8443."""
    body, headers = jmap_request(server, user, calls)
    connection = http.client.HTTPSConnection(
        "127.0.0.1", server.machine.port(8443), context=tls_context(), timeout=30
    )
    connection.request("POST", "/jmap/", body, headers)
    return connection.getresponse()


def jmap(server: CyrusServer, user: str, calls: list) -> dict:
    """One JMAP request over TLS on 8443; the response's JSON."""
    response = jmap_response(server, user, calls)
    assert response.status == 200, (response.status, response.read())
    return json.load(response)


def test_a_caldav_client_makes_a_calendar_and_an_event_and_reads_them_back_over_tls(
    caldav_server, behaviour
):
    calendar = dav_client(caldav_server, "alice").principal().make_calendar(name="Work")
    calendar.save_event(EVENT)
    summaries = [str(event.icalendar_component["SUMMARY"]) for event in calendar.events()]
    behaviour("CalDAV client on 8443: new calendar and event read back", " ".join(summaries))
    assert summaries == ["Planning"]


def test_a_carddav_contact_put_into_a_new_address_book_is_read_back_over_tls(
    caldav_server, behaviour
):
    client = dav_client(caldav_server, "alice")
    book = https_url(caldav_server, "/dav/addressbooks/user/alice/Contacts/")
    made = client.request(book, "MKCOL", ADDRESS_BOOK, {"Content-Type": "application/xml"})
    assert made.status == 201, made.raw
    stored = client.put(f"{book}carol.vcf", CONTACT, {"Content-Type": "text/vcard"})
    assert stored.status == 201, stored.raw
    read = client.request(f"{book}carol.vcf", "GET", "", {"Accept": "text/vcard"})
    behaviour("CardDAV on 8443: contact read back", str(read.status))
    assert read.status == 200 and "FN:Carol Example" in read.raw


def test_jmap_off_as_shipped_is_turned_on_by_readme_debian_and_sees_the_mail_already_there(
    caldav_server, behaviour
):
    machine = caldav_server.machine
    subject = "delivered before JMAP was on"
    assert lmtp_deliver(machine, ["bob"], make_message(subject)).delivered_to("bob")
    calendar = dav_client(caldav_server, "bob").principal().make_calendar(name="Team")
    calendar.save_event(EVENT)
    # Without its module, /jmap/ is the server's root, which takes no POST.
    shipped = jmap_response(caldav_server, "bob", []).status
    assert shipped == 405, f"JMAP answered {shipped} with the shipped imapd.conf"

    original = machine.read_file(IMAPD_CONF)
    try:
        for command in commands_after("mail already there (while the service runs) and restart:"):
            machine.check(command)
        wait_until_serving(machine)
        machine.wait_for_tcp(8443)
        answer = jmap(
            caldav_server,
            "bob",
            [
                ["Mailbox/get", {}, "mailboxes"],
                ["CalendarEvent/query", {}, "events"],
                ["Email/query", {}, "emails"],
                [
                    "Email/get",
                    {
                        "#ids": {"resultOf": "emails", "name": "Email/query", "path": "/ids"},
                        "properties": ["subject"],
                    },
                    "subjects",
                ],
            ],
        )
    finally:
        machine.rewrite_file(IMAPD_CONF, original)
        restart(machine)
        machine.wait_for_tcp(8443)
    (_, mailboxes, _), (_, events, _), _, (_, emails, _) = answer["methodResponses"]
    roles = [mailbox["role"] for mailbox in mailboxes["list"]]
    subjects = [email["subject"] for email in emails["list"]]
    behaviour(
        "JMAP on 8443: off as shipped; after README.Debian's commands: mailboxes, events"
        " made over CalDAV, mail delivered before",
        f"{shipped}; {roles} {events['total']} {subject in subjects}",
    )
    assert "inbox" in roles
    assert events["total"] == 1
    assert subject in subjects, subjects


def test_http_without_tls_sends_a_login_to_tls_unchecked(caldav_server, behaviour):
    """allowplaintext: no holds for HTTP too: on 8008 a request with a password is
    redirected to https before the password is looked at."""
    body, headers = jmap_request(caldav_server, "bob", [])
    connection = http.client.HTTPConnection(
        "127.0.0.1", caldav_server.machine.port(8008), timeout=30
    )
    connection.request("POST", "/dav/calendars/user/bob/", body, headers)
    response = connection.getresponse()
    location = response.getheader("Location") or ""
    behaviour("HTTP request with a password on 8008", f"{response.status}, to https")
    assert response.status == 301 and location.startswith("https://"), (response.status, location)
    # Cyrus's line for the request: nobody logged in.
    machine = caldav_server.machine
    machine.wait_until_logged('=> "HTTP/1.1 301', 1)
    logged = next(line for line in machine.cyrus_log().splitlines() if '=> "HTTP/1.1 301' in line)
    assert ' as "bob"' not in logged, logged
