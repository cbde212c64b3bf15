"""A reply written to support and to a mailing list support is on: the list's copy is the mail kept already.

Mailman 3 puts its subject prefix in front of the reply's "Re:" ("[users] Re: printer jams"); the
customer's own copy says "Re: printer jams". Both carry one Message-ID, From and Date: one mail.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ingest.parse import dedupe_key
from ticketd.pipeline import drain
from ticketd.store.inbox import store_raw
from ticketd.store.tables import messages, raw_mail, tickets

WORDS = b"Same here: the printer jams every morning since the update.\r\n"
FOOTER = (b"_______________________________________________\r\n"
          b"users mailing list -- users@lists.example.org\r\n"
          b"To unsubscribe send an email to users-leave@lists.example.org\r\n")


def _head(subject: bytes, to: bytes = b"support@example.com") -> bytes:
    return (b"From: Dana <dana@example.org>\r\nTo: " + to + b", users@lists.example.org\r\n"
            b"Subject: " + subject + b"\r\nDate: Tue, 02 Jan 2024 10:00:00 +0100\r\n"
            b"Message-ID: <jam-reply@example.org>\r\nIn-Reply-To: <jam@lists.example.org>\r\n"
            b"References: <jam@lists.example.org>\r\nContent-Type: text/plain\r\n")


def _own(subject: bytes, **kw) -> bytes:
    return _head(subject, **kw) + b"\r\n" + WORDS


def _through_list(subject: bytes, **kw) -> bytes:
    # Mailman 3: "[users] " before the whole subject, "Re:" included; its List-Id; its footer.
    return (_head(b"[users] " + subject, **kw) + b"List-Id: <users.lists.example.org>\r\nPrecedence: list\r\n\r\n"
            + WORDS + FOOTER)


def _deliver(app, *raws: bytes) -> None:
    for raw in raws:
        key, message_id = dedupe_key(raw)
        store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id)
        drain(app)


def _count(app, table) -> int:
    with app.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.parametrize("list_copy_first", [False, True])
def test_a_reply_in_a_list_thread_copied_to_support_opens_one_ticket(list_copy_first, make_app, sqlite_url):
    app = make_app(sqlite_url)
    mails = [_own(b"Re: printer jams"), _through_list(b"Re: printer jams")]
    _deliver(app, *(reversed(mails) if list_copy_first else mails))
    assert _count(app, tickets) == 1
    assert _count(app, messages) == 1
    with app.engine.connect() as conn:
        assert conn.execute(select(raw_mail.c.state)).scalars().all() == ["done", "done"]


@pytest.mark.parametrize("list_copy_first", [False, True])
def test_a_reply_on_a_ticket_copied_to_a_list_is_stored_once(list_copy_first, make_app, sqlite_url):
    app = make_app(sqlite_url)
    _deliver(app, b"From: Dana <dana@example.org>\r\nTo: support@example.com\r\nSubject: printer jams\r\n"
                  b"Date: Mon, 01 Jan 2024 10:00:00 +0100\r\nMessage-ID: <jam-first@example.org>\r\n"
                  b"Content-Type: text/plain\r\n\r\nThe printer jams.\r\n")
    with app.engine.connect() as conn:
        ticket_id = conn.execute(select(tickets.c.id)).scalar_one()
    subject = b"Re: [#%d] printer jams" % ticket_id
    mails = [_own(subject), _through_list(subject)]
    _deliver(app, *(reversed(mails) if list_copy_first else mails))
    with app.engine.connect() as conn:
        kept = conn.execute(select(messages.c.ticket_id).where(messages.c.message_id == "jam-reply@example.org")
                            ).scalars().all()
    assert kept == [ticket_id]
    assert _count(app, tickets) == 1
