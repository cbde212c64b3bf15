"""Retention: the `retention` settings, the cutoffs they give, and the daemon's passes that erase what is due."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import event

from ingest.parse import dedupe_key
from tests.sink import wait_until
from tests.test_erase import OWN, deliver, mail_bytes, rows, ticket_of, too_deep
from ticketd.clock import utcnow
from ticketd.daemon import build_back_office
from ticketd.domain.erase import RetentionCutoffs, retention_cutoffs
from ticketd.erase import RetentionKeeper, retention_pass
from ticketd.merge import merge
from ticketd.pipeline import drain
from ticketd.settings import load_settings
from ticketd.store import tables as t
from ticketd.store.db import reading
from ticketd.store.files import attachment_path
from ticketd.store.inbox import store_raw
from ticketd.store.merge import final_ticket
from ticketd.store.tickets import update_ticket

NOW = datetime(2026, 3, 2, 12, 0, 0)
RETENTION = "retention:\n  closed_tickets_days: 30\n  raw_mail_days: 7\n"


# ---------------------------------------------------------------- the pure cutoffs


@pytest.mark.parametrize(("closed_days", "raw_days", "expected"), [
    (None, None, RetentionCutoffs(None, None)),
    (30, None, RetentionCutoffs(NOW - timedelta(days=30), None)),
    (None, 7, RetentionCutoffs(None, NOW - timedelta(days=7))),
    (1, 365, RetentionCutoffs(datetime(2026, 3, 1, 12, 0, 0), datetime(2025, 3, 2, 12, 0, 0))),
])
def test_cutoffs_are_now_minus_the_days_and_none_where_retention_is_off(closed_days, raw_days, expected):
    cutoffs = retention_cutoffs(NOW, closed_days, raw_days)
    assert cutoffs == expected
    assert cutoffs.off is (closed_days is None and raw_days is None)


# ---------------------------------------------------------------- settings


def test_retention_is_off_by_default_and_set_in_the_file_or_the_environment(tmp_path):
    assert load_settings(None, environ={}).retention.enabled is False
    config = tmp_path / "ticketd.yaml"
    config.write_text(RETENTION)
    retention = load_settings(config, environ={}).retention
    assert (retention.closed_tickets_days, retention.raw_mail_days, retention.enabled) == (30, 7, True)
    overridden = load_settings(config, environ={"TICKETD_RETENTION__RAW_MAIL_DAYS": "null",
                                                "TICKETD_RETENTION__CLOSED_TICKETS_DAYS": "90"}).retention
    assert (overridden.closed_tickets_days, overridden.raw_mail_days) == (90, None)


@pytest.mark.parametrize(("value", "complaint"), [
    ("0", "greater than 0"), ("-5", "greater than 0"), ("1.5", "valid integer"), ("'30'", "valid integer"),
    ("true", "a number is wanted here"), ("[30]", "valid integer"),
])
def test_retention_days_are_positive_integers_or_null(tmp_path, value, complaint):
    config = tmp_path / "ticketd.yaml"
    config.write_text(f"retention:\n  raw_mail_days: {value}\n")
    with pytest.raises(ValidationError, match=rf"retention.raw_mail_days\n.*{complaint}"):
        load_settings(config, environ={})


def test_an_unknown_retention_key_is_an_error(tmp_path):
    config = tmp_path / "ticketd.yaml"
    config.write_text("retention:\n  closed_ticket_days: 30\n")
    with pytest.raises(ValidationError, match="closed_ticket_days"):
        load_settings(config, environ={})


# ---------------------------------------------------------------- a pass


def _close(app, ticket_id: int, closed_at: datetime) -> None:
    with app.engine.begin() as conn:
        update_ticket(conn, ticket_id, closed_at, status="closed", closed_at=closed_at)


def _store(app, raw: bytes):
    key, message_id = dedupe_key(raw)
    return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id)


def test_a_pass_erases_only_what_is_due(make_app, db_url, caplog):
    app = make_app(db_url, extra=RETENTION)
    deliver(app, *(mail_bytes(f"{who}@example.org", f"Case {who}", f"<{who}@client.example.org>",
                              files=((f"{who}.txt", f"{who}'s file".encode()),)) for who in ("old", "recent", "open")))
    old, recent, still_open = (ticket_of(app, f"{who}@client.example.org") for who in ("old", "recent", "open"))
    start = utcnow()
    _close(app, old, start)
    _close(app, recent, start + timedelta(days=20))
    _store(app, too_deep("q@example.org"))
    drain(app)
    waiting = _store(app, mail_bytes("new@example.org", "Not yet", "<new@client.example.org>"))
    quarantined = rows(app, t.raw_mail, t.raw_mail.c.state == "quarantined")
    assert len(quarantined) == 1
    before = {r["id"]: r for r in rows(app, t.raw_mail)}
    old_file = attachment_path(app.settings.attachments_dir, rows(app, t.attachments)[0]["sha256"])
    assert old_file.exists()

    assert set(retention_pass(app, start + timedelta(days=5)).counts().values()) == {0}   # nothing due yet
    caplog.set_level(logging.INFO, logger="ticketd.erase")
    erased = retention_pass(app, start + timedelta(days=31))

    assert erased.tickets == [old]
    assert erased.raw_bytes_dropped == 2 and erased.raw_mail == 1 and erased.files_removed == 1
    assert [x["id"] for x in rows(app, t.tickets)] == [recent, still_open]
    assert not old_file.exists() and len(rows(app, t.attachments)) == 2
    after = {r["id"]: r for r in rows(app, t.raw_mail)}
    for raw_id, row in after.items():
        was = before[raw_id]
        if was["ticket_id"] == old:
            assert (row["state"], row["ticket_id"], bytes(row["raw"])) == ("erased", None, b"")
            assert "retention (closed_tickets_days: 30)" in row["reason"]
        elif was["ticket_id"] in (recent, still_open):
            # Processed: the bytes go, what became of the mail stays.
            assert (row["state"], row["ticket_id"], bytes(row["raw"]), row["size"]) == ("done", was["ticket_id"],
                                                                                       b"", 0)
            assert (row["envelope_from"], row["message_id"], row["dedupe_key"]) == (None, None, was["dedupe_key"])
            assert "retention (raw_mail_days: 7)" in row["reason"]
        else:
            assert raw_id in (quarantined[0]["id"], waiting.raw_id)
            assert row == was   # quarantined mail is evidence; waiting mail is not processed yet
    [line] = [r.getMessage() for r in caplog.records if r.name == "ticketd.erase"]
    assert line.startswith(f"retention pass: tickets {old} erased; tickets 1, messages 1,")
    assert "raw bytes dropped 2" in line

    caplog.clear()
    assert set(retention_pass(app, start + timedelta(days=31)).counts().values()) == {0}
    assert [r for r in caplog.records if r.name == "ticketd.erase"] == []   # nothing erased: no line


def test_a_merged_ticket_stays_while_its_merge_leads_somewhere(make_app, db_url):
    app = make_app(db_url, extra=RETENTION)
    deliver(app, *(mail_bytes(f"{who}@example.org", f"Case {who}", f"<{who}@client.example.org>")
                   for who in ("source", "into")))
    source, into = ticket_of(app, "source@client.example.org"), ticket_of(app, "into@client.example.org")
    merge(app, source, into)
    later = utcnow() + timedelta(days=31)
    # SOURCE was closed by the merge long enough ago; INTO is open: its old mail must still lead to INTO.
    assert retention_pass(app, later).tickets == []
    with reading(app.engine) as conn:
        assert final_ticket(conn, source) == into

    _close(app, into, utcnow())
    assert retention_pass(app, later).tickets == [into]
    assert [r["merged_into"] for r in rows(app, t.tickets)] == [None]   # leads nowhere now
    assert retention_pass(app, later).tickets == [source]
    assert rows(app, t.tickets) == []


def test_a_mail_whose_bytes_retention_dropped_is_still_a_duplicate_when_it_comes_again(make_app, db_url):
    app = make_app(db_url, extra="retention:\n  raw_mail_days: 1\n")
    raw = mail_bytes("cust@example.org", "Printer", "<keep@client.example.org>", files=(("photo.jpg", OWN),))
    deliver(app, raw)
    retention_pass(app, utcnow() + timedelta(days=2))
    [row] = rows(app, t.raw_mail)
    assert bytes(row["raw"]) == b"" and row["state"] == "done"

    deliver(app, raw)
    again = _store(app, raw)
    assert (again.raw_id, again.duplicate) == (row["id"], True)
    assert len(rows(app, t.tickets)) == 1 and len(rows(app, t.raw_mail)) == 1


def test_a_pass_erases_in_small_transactions(make_app, db_url):
    app = make_app(db_url, extra=RETENTION)
    deliver(app, *(mail_bytes(f"c{n}@example.org", f"Case {n}", f"<c{n}@client.example.org>") for n in range(5)))
    for ticket in rows(app, t.tickets)[:3]:
        _close(app, ticket["id"], utcnow())
    commits = []
    event.listen(app.engine, "commit", lambda conn: commits.append(conn))
    erased = retention_pass(app, utcnow() + timedelta(days=31), tickets_per_transaction=2, raw_rows_per_transaction=1)
    assert len(erased.tickets) == 3 and erased.raw_bytes_dropped == 2
    assert len(commits) == 2 + 2   # tickets 2 + 1, then raw mail 1 + 1
    assert len(rows(app, t.tickets)) == 2


def test_with_retention_off_a_pass_runs_no_query_and_the_keeper_runs_for_the_file_sweep(make_app, sqlite_url,
                                                                                          postgres_url):
    off = make_app(sqlite_url)
    statements = []
    event.listen(off.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert retention_pass(off, utcnow() + timedelta(days=3650)) is None
    assert statements == []
    # Files no row names are no one's data (tests/test_retention_orphan_files.py).
    assert [type(c) for c in build_back_office(off)].count(RetentionKeeper) == 1
    on = make_app(postgres_url, extra=RETENTION)
    assert [type(c) for c in build_back_office(on)].count(RetentionKeeper) == 1


def test_the_daemons_keeper_runs_a_pass_when_it_starts(make_app, db_url):
    app = make_app(db_url, extra="retention:\n  closed_tickets_days: 1\n")
    deliver(app, mail_bytes("cust@example.org", "Printer", "<k1@client.example.org>"))
    _close(app, ticket_of(app, "k1@client.example.org"), utcnow() - timedelta(days=2))
    keeper = RetentionKeeper(app)
    keeper.start()
    try:
        wait_until(lambda: rows(app, t.tickets) == [])
    finally:
        keeper.stop()
    assert rows(app, t.raw_mail)[0]["state"] == "erased"
