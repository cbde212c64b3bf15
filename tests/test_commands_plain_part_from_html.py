"""Commands in a reply whose plain-text part the agent's mail client made from its HTML.

Gmail, Apple Mail and Thunderbird send multipart/alternative with a text/plain
part written from the HTML the agent typed; for a short reply it reads exactly
as ticketd's own reading of the HTML. Such a mail has a plain-text part, and
its commands apply; a mail with only HTML still has them refused.
"""

from __future__ import annotations

from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from ingest.parse import parse_mail
from tests.desk import body_text, build_mail, open_desk

CUSTOMER, ALICE = "cust@example.org", "alice@example.com"


@pytest.fixture
def desk(make_app, sqlite_url):
    yield from open_desk(make_app, sqlite_url)


def _agent_mail(desk, tid: int, plain: str, html: str | None):
    msg = build_mail(ALICE, plain, to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer", html=html)
    return desk.send(msg)


@pytest.mark.parametrize(("plain", "html"), [
    ("#close\n", '<div dir="ltr">#close</div>'),
    ("#close\n\nDone.\n", '<div dir="ltr"><div>#close</div><div><br></div><div>Done.</div></div>'),
    ("#close\n\nDone.\n", "<p>#close</p><p>Done.</p>"),
], ids=["commands only", "gmail", "paragraphs"])
def test_commands_in_a_plain_part_made_from_the_html_apply(desk, plain, html):
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    told = len(desk.inbox(ALICE))
    _agent_mail(desk, tid, plain, html)
    assert desk.ticket(tid)["status"] == "closed"
    assert desk.events(tid, "closed_by_agent")[-1]["actor"] == ALICE
    assert desk.events(tid, "commands_rejected") == []
    assert "plain-text part" not in "".join(body_text(m) for m in desk.inbox(ALICE)[told:])


def test_commands_in_a_mail_of_only_html_are_still_refused(desk):
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    msg = build_mail(ALICE, "x", to=desk.agent_address(tid, ALICE), subject=f"Re: [#{tid}] Printer")
    msg.set_content('<div dir="ltr">#close</div><p>Done.</p>', subtype="html")
    desk.send(msg)
    assert desk.ticket(tid)["status"] == "new"
    assert "plain-text part" in body_text(desk.last(ALICE))


def test_a_blank_plain_part_beside_the_html_is_no_plain_text(desk):
    """Some clients send an empty text/plain alternative: the text is the HTML's, and its commands are refused."""
    tid = desk.open_assigned(CUSTOMER, "The printer is on fire.\n", ALICE)
    _agent_mail(desk, tid, "\n", '<div>#close</div><p>Done.</p>')
    assert desk.ticket(tid)["status"] == "new"
    assert "plain-text part" in body_text(desk.last(ALICE))


def test_the_parse_says_where_the_text_came_from():
    both = build_mail(ALICE, "#close\n", html='<div dir="ltr">#close</div>')
    html = build_mail(ALICE, "x")
    html.set_content("<p>#close</p>", subtype="html")
    assert parse_mail(both.as_bytes()).text_from_html is False
    assert parse_mail(html.as_bytes()).text_from_html is True
    assert parse_mail(build_mail(ALICE, "#close\n").as_bytes()).text_from_html is False

    # Only where the text starts counts, where commands are read: an HTML part further down (a page the
    # agent attached inline) does not make the agent's plain words HTML's.
    later = MIMEMultipart("mixed")
    later["From"], later["To"], later["Subject"] = ALICE, "support@example.com", "Re: [#1] Printer"
    later.attach(MIMEText("#close\nDone.\n", "plain"))
    later.attach(MIMEText("<p>The vendor's <b>page</b></p>", "html"))
    assert parse_mail(later.as_bytes()).text_from_html is False
