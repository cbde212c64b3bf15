"""A desk of years on PostgreSQL, whose protocol binds at most 65 535 parameters a statement:
tickets listed, searched and shown whole, and a reply threaded, when they name more rows than that."""

from __future__ import annotations

# More than one statement binds: 65 535.
MANY = 65_536 + 100


def test_more_tickets_than_one_statement_takes_are_listed_and_searched_whole(postgres_url, make_app):
    """`tickets list` reads each listed ticket's people, merges and search hit."""
    from ticketd.views import list_tickets

    app = make_app(postgres_url)
    with app.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO tickets (subject, status, priority, requester, created_at, updated_at) "
            f"SELECT 'Drucker ' || g, 'new', 'normal', 'c' || g || '@example.org', now(), now() "
            f"FROM generate_series(1, {MANY}) g")
        conn.exec_driver_sql(
            "INSERT INTO messages (ticket_id, direction, text, full_text, author_role, created_at) "
            "SELECT id, 'in', 'Der Drucker brennt', 'Der Drucker brennt', 'customer', now() FROM tickets")
        first, last = conn.exec_driver_sql("SELECT min(id), max(id) FROM tickets").one()
        conn.exec_driver_sql("INSERT INTO participants (ticket_id, email, role, created_at) "
                             f"VALUES ({first}, 'f1@example.org', 'follower', now()), "
                             f"({last}, 'f2@example.org', 'follower', now())")
        conn.exec_driver_sql(f"UPDATE tickets SET merged_into = {last}, status = 'closed' WHERE id = {first + 1}")

    for listed in (list_tickets(app.engine), list_tickets(app.engine, terms=["drucker"])):
        assert len(listed) == MANY
        by_id = {t["id"]: t for t in listed}
        assert by_id[first]["followers"] == ["f1@example.org"] and by_id[last]["followers"] == ["f2@example.org"]
        assert by_id[last]["merged_from"] == [first + 1]
    assert all(t["hit"]["snippet"] == "Der Drucker brennt" for t in listed)


def test_a_ticket_with_more_messages_than_one_statement_takes_is_shown_whole(postgres_url, make_app):
    """A monitoring robot writing to one ticket for years: `tickets show` lists every message and file."""
    from ticketd.views import show_ticket

    app = make_app(postgres_url)
    with app.engine.begin() as conn:
        ticket = conn.exec_driver_sql(
            "INSERT INTO tickets (subject, status, priority, requester, created_at, updated_at) "
            "VALUES ('disk full', 'open', 'normal', 'robot@example.org', now(), now()) RETURNING id").scalar_one()
        conn.exec_driver_sql(
            "INSERT INTO messages (ticket_id, direction, text, full_text, author_role, created_at) "
            f"SELECT {ticket}, 'in', 'disk ' || g, 'disk ' || g, 'customer', now() FROM generate_series(1, {MANY}) g")
        first, last = conn.exec_driver_sql("SELECT min(id), max(id) FROM messages").one()
        conn.exec_driver_sql(
            "INSERT INTO attachments (message_id, filename, content_type, size, sha256, inline) "
            f"VALUES ({first}, 'first.log', 'text/plain', 3, '{'a' * 64}', false), "
            f"({last}, 'last.log', 'text/plain', 4, '{'b' * 64}', false)")

    shown = show_ticket(app.engine, ticket)
    assert len(shown["messages"]) == MANY
    assert shown["messages"][0]["attachments"][0]["filename"] == "first.log"
    assert shown["messages"][-1]["text"] == f"disk {MANY}"
    assert shown["messages"][-1]["attachments"][0]["filename"] == "last.log"


def test_a_reply_naming_more_mails_than_one_statement_takes_joins_its_ticket(postgres_url, make_app):
    """A References header of a thread of years (or a crafted one) listing 70 000 ids was looked up
    whole, and the mail quarantined; the thread's first mail still says where it belongs."""
    import smtplib

    from ingest.smtp import Receiver
    from ticketd.pipeline import drain
    from ticketd.views import list_tickets, show_ticket

    app = make_app(postgres_url)
    receiver = Receiver(app)
    receiver.start()
    head = "From: ann@example.org\r\nTo: support@example.com\r\n"
    middle = "\r\n ".join(f"<r{i}@lists.example.net>" for i in range(70_000))
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.sendmail("ann@example.org", ["support@example.com"],
                            head + "Subject: Printer\r\nMessage-ID: <root@example.org>\r\n\r\nIt burns.\r\n")
        assert drain(app) == 1
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.sendmail("ann@example.org", ["support@example.com"],
                            head + "Subject: Re: Printer\r\nMessage-ID: <reply@example.org>\r\n"
                            f"References: <root@example.org>\r\n {middle}\r\n\r\nStill burning.\r\n")
        assert drain(app) == 1
    finally:
        receiver.stop()
    [ticket] = list_tickets(app.engine)
    replies = [m for m in show_ticket(app.engine, ticket["id"])["messages"] if m["direction"] == "in"]
    assert [(m["text"].strip(), m["matched_by"]) for m in replies] == [("It burns.", "new"),
                                                                       ("Still burning.", "references")]


def test_a_mail_copying_more_addresses_than_one_statement_takes_opens_its_ticket(postgres_url, make_app):
    """A mail Cc'ing 70 000 addresses was quarantined: its ticket gets max_followers of them, and one
    event counts the rest."""
    import smtplib

    from ingest.smtp import Receiver
    from ticketd.pipeline import drain
    from ticketd.views import list_tickets, show_ticket

    app = make_app(postgres_url)
    receiver = Receiver(app)
    receiver.start()
    copied = ",\r\n ".join(f"c{i}@example.org" for i in range(70_000))
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.sendmail("ann@example.org", ["support@example.com"],
                            "From: ann@example.org\r\nTo: support@example.com\r\nSubject: Printer\r\n"
                            f"Message-ID: <root@example.org>\r\nCc: {copied}\r\n\r\nIt burns.\r\n")
        assert drain(app) == 1
    finally:
        receiver.stop()
    [ticket] = list_tickets(app.engine)
    assert ticket["followers"] == [f"c{i}@example.org" for i in range(app.settings.max_followers)]
    [limited] = [e for e in show_ticket(app.engine, ticket["id"])["events"] if e["kind"] == "followers_limited"]
    assert limited["to"] == str(70_000 - app.settings.max_followers)


def test_the_ids_looked_up_are_the_nearest_and_the_first():
    from ingest.match import REFERENCES_LOOKED_UP, referenced_ids

    assert referenced_ids(["p"], ["root", "a", "p"]) == ["p", "a", "root"]
    many = [f"r{i}" for i in range(1000)]
    looked_up = referenced_ids(["p"], many)
    assert looked_up == ["p", *reversed(many[-REFERENCES_LOOKED_UP:]), "r0"]
    # r0 is the first of both lists: named once.
    assert len(referenced_ids(many, many)) == 2 * REFERENCES_LOOKED_UP
