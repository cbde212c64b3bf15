"""`ticketd tickets list --search`: tickets found by their words, in any case and script, on both databases."""

from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage

import pytest

from ingest.smtp import Receiver
from ticketd.domain.search import search_terms, snippet
from ticketd.pipeline import drain
from ticketd.views import list_tickets
from tests.cli import cli_ok, run_cli
from tests.conftest import write_config


def _mail(sender: str, subject: str, body: str, message_id: str, *, reply_to: str | None = None,
          attachment: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if reply_to:
        msg["In-Reply-To"] = msg["References"] = reply_to
    msg.set_content(body)
    if attachment:
        msg.add_attachment(b"%PDF-1.4\n", maintype="application", subtype="pdf", filename=attachment)
    return msg


def test_search_finds_tickets_by_every_word_anywhere_a_person_would_look(tmp_path, db_url, make_app):
    app = make_app(db_url)
    config = write_config(tmp_path, db_url)
    receiver = Receiver(app)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.send_message(_mail("Anna Schmidt <ann@example.org>", "Принтер горит",
                                      "Der Drucker brennt, bitte helfen.\nToner 50% voll, Fach toner_leer.\n",
                                      "<search-1@example.org>", attachment="Rechnung-4711.pdf"))
            client.send_message(_mail("ben@example.org", "Invoice question",
                                      "Where is my invoice of 50 Euro? Tonerxleer.\n", "<search-2@example.org>"))
        assert drain(app) == 2
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            client.send_message(_mail("ben@example.org", "Re: Invoice question",
                                      "And now the PRINTER is smoking too.\n\n> Where is my invoice of 50 Euro?\n",
                                      "<search-3@example.org>", reply_to="<search-2@example.org>"))
        assert drain(app) == 1
    finally:
        receiver.stop()
    first, second = sorted(t["id"] for t in json.loads(cli_ok(config, "tickets", "list", "--json")))

    def found(*args: str) -> list[dict]:
        return json.loads(cli_ok(config, "tickets", "list", "--json", *args))

    def ids(query: str, **filters) -> list[int]:
        """What `tickets list --search QUERY --json` lists, read as the command reads it, without its start."""
        return [t["id"] for t in list_tickets(app.engine, terms=search_terms(query), **filters)]

    # Any case, beyond ASCII too: SQLite's own lower() folds only A-Z.
    assert ids("принтер") == ids("ПРИНТЕР") == [first]
    assert ids("drucker BRENNT") == [first]
    # Every word must be on the ticket, not in one message: ticket 2's are in two.
    assert ids("invoice printer") == [second]
    assert ids("invoice drucker") == []
    assert ids("printer") == [second]
    # A phrase in double quotes is one term.
    assert ids('"drucker brennt"') == [first]
    assert ids('"brennt drucker"') == []
    # % and _ are text, not LIKE's wildcards: "50 Euro" and "Tonerxleer" do not match.
    assert ids("50%") == [first]
    assert ids("toner_leer") == [first]
    # The requester's name and address, a file's name.
    assert ids("schmidt") == [first]
    assert ids("ben@example.org") == [second]
    assert ids("4711") == [first]
    assert ids("example.org") == [second, first]
    # With the other filters.
    assert ids("printer", statuses=["closed"]) == []
    assert ids("invoice", requester="ben@example.org", statuses=["new", "open"]) == [second]
    assert [t["id"] for t in found("--search", "invoice", "--requester", "ben@example.org", "--open")] == [second]

    # The hit: the newest message holding a term, with the words around it.
    [hit] = found("--search", "printer")
    shown = json.loads(cli_ok(config, "tickets", "show", str(second), "--json"))
    newest = [m for m in shown["messages"] if m["direction"] == "in"][-1]
    assert hit["hit"] == {"message_id": newest["id"], "snippet": "And now the PRINTER is smoking too. "
                          "> Where is my invoice of 50 Euro?"}
    assert found("--search", "invoice")[0]["hit"]["message_id"] == newest["id"]
    # Found only by a file's name: no message to show.
    assert found("--search", "4711")[0]["hit"] is None
    assert "hit" not in found()[0]

    text = cli_ok(config, "tickets", "list", "--search", "drucker")
    assert f"[#{first}]" in text and "Der Drucker brennt, bitte helfen." in text and f"[#{second}]" not in text

    done = run_cli(config, "tickets", "list", "--search", ' "" ')
    assert done.returncode == 2 and "--search needs a word to look for" in done.stderr


@pytest.mark.parametrize("query, terms", [
    ("printer", ["printer"]),
    ("  Printer   ON fire ", ["printer", "on", "fire"]),
    ('"on   fire" printer', ["on fire", "printer"]),
    ("can't print", ["can't", "print"]),
    ('"unclosed phrase', ['"unclosed', "phrase"]),
    ("printer PRINTER", ["printer"]),
])
def test_search_terms(query, terms):
    assert search_terms(query) == terms


@pytest.mark.parametrize("query", ["", "   ", '""', '" "'])
def test_search_without_a_word_is_refused(query):
    with pytest.raises(ValueError, match="needs a word"):
        search_terms(query)


def test_snippet_shows_the_words_around_the_first_term_on_one_line():
    text = "Hello,\n\n" + "filler " * 40 + "the PRINTER\nis on fire " + "and more " * 40
    piece = snippet(text, ["printer"], width=60)
    assert piece.startswith("…") and piece.endswith("…") and "\n" not in piece
    assert "the PRINTER is on fire" in piece and len(piece) == 62
    assert snippet("short text", ["text"]) == "short text"
    assert snippet("Printer at the start", ["printer"], width=10) == "Printer at…"
    assert snippet("ends with the printer", ["printer"], width=11) == "…the printer"
    # A term the text does not hold (a fold Python and the database disagree on): its beginning.
    assert snippet("nothing here " * 20, ["absent"], width=12) == "nothing here…"


def test_snippet_finds_a_phrase_across_a_line_break_and_marks_text_cut_far_away():
    text = "x" * 5000 + "\n\nthe printer\n   is ON\nfire today\n" + "y" * 5000
    piece = snippet(text, ["on fire"], width=30)
    assert "is ON fire" in piece and piece.startswith("…") and piece.endswith("…") and len(piece) == 32
    # White space wider than the window flattened around the hit: the word before it is cut, and marked so.
    assert snippet("a\n\n\n" + " " * 2000 + "printer", ["printer"], width=10) == "…printer"
    assert snippet("a\n\n\n" + " " * 20 + "printer", ["printer"], width=10) == "a printer"
