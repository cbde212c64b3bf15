"""The group commit's INSERT: a batch of new mails in one statement, each sender told its own row."""

from __future__ import annotations

from sqlalchemy import event, select

from ingest.parse import dedupe_key
from tests.sink import customer_mail
from ticketd.store.inbox import RawMail, store_raw_batch
from ticketd.store.tables import raw_mail


def _rawmail(subject: str, padding: int) -> RawMail:
    raw = customer_mail(subject=subject, body="x" * padding + "\n").as_bytes()
    return RawMail(raw, "smtp", *dedupe_key(raw), "cust@example.org", ["support@example.com"])


def test_a_batch_of_new_mails_is_one_insert_and_each_stored_names_its_own_row(make_app, db_url):
    app = make_app(db_url)
    # Sizes in no order of the subjects: a mix-up of ids would show in the bytes.
    mails = [_rawmail(f"question {n}", (n * 7919) % 50) for n in range(40)]
    inserts: list[str] = []
    event.listen(app.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *_: inserts.append(statement) if statement.startswith("INSERT")
                 else None)
    stored = store_raw_batch(app.engine, mails)
    assert len(inserts) == 1
    assert not any(s.duplicate or s.derived for s in stored)
    with app.engine.connect() as conn:
        rows = dict(conn.execute(select(raw_mail.c.id, raw_mail.c.raw)).all())
    assert len(rows) == len(mails)
    assert [bytes(rows[s.raw_id]) for s in stored] == [m.raw for m in mails]


def test_a_batch_with_a_key_twice_or_already_taken_stores_each_mail_once(make_app, db_url):
    app = make_app(db_url)
    first, second, third = (_rawmail(f"question {n}", n) for n in range(3))
    [kept] = store_raw_batch(app.engine, [first])
    stored = store_raw_batch(app.engine, [second, first, third, second])
    assert [s.duplicate for s in stored] == [False, True, False, True]
    assert stored[1].raw_id == kept.raw_id and stored[3].raw_id == stored[0].raw_id
    with app.engine.connect() as conn:
        rows = dict(conn.execute(select(raw_mail.c.id, raw_mail.c.raw)).all())
    assert len(rows) == 3
    assert [bytes(rows[s.raw_id]) for s in stored] == [m.raw for m in (second, first, third, second)]
