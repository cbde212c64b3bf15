"""A quarantined mail leaves no attachment file behind: its files are written before its processing, and once it
fails no row names them.

README "Erasure and retention": erased means gone. A quarantined mail's
files were named by no attachment row, so neither its erasure nor anything
else ever removed them; they stayed under data_dir for ever. A file some
stored message has stays, and `quarantine retry` writes the mail's files again.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from ingest.parse import dedupe_key
from tests.sink import customer_mail
from ticketd.pipeline import process_batch, process_raw
from ticketd.store.db import reading
from ticketd.store.files import attachment_path
from ticketd.store.inbox import requeue, store_raw
from ticketd.store.tables import attachments, raw_mail

CONTRACT = b"%PDF-1.4 the signed contract of the quarantined mail\n"
INVOICE = b"%PDF-1.4 an invoice two customers sent\n"


@pytest.fixture
def app(make_app, db_url, tmp_path):
    # A broken acknowledgement template: a new ticket's first mail fails in
    # processing (after its files are written) and is quarantined; an
    # auto-submitted mail gets no acknowledgement and goes through.
    overrides = tmp_path / "overrides" / "requester"
    overrides.mkdir(parents=True)
    (overrides / "ticket_opened.txt.j2").write_text("Hello {{ no_such_variable }}\n")
    return make_app(db_url, extra=f"templates_dir: {tmp_path / 'overrides'}\n")


def _stored(app, subject: str, data: bytes, **headers) -> int:
    msg = customer_mail(subject=subject, **headers)
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=f"{subject}.pdf")
    raw = msg.as_bytes()
    key, message_id = dedupe_key(raw)
    return store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id,
                     envelope_to=["support@example.com"]).raw_id


def _on_disk(app, data: bytes) -> bool:
    return attachment_path(app.settings.attachments_dir, hashlib.sha256(data).hexdigest()).exists()


def _state(app, raw_id: int) -> str:
    with reading(app.engine) as conn:
        return conn.execute(select(raw_mail.c.state).where(raw_mail.c.id == raw_id)).scalar_one()


def test_a_quarantined_mails_files_are_not_left_on_disk(app):
    raw_id = _stored(app, "contract", CONTRACT)

    [outcome] = process_batch(app, [raw_id])

    assert outcome.quarantined and _state(app, raw_id) == "quarantined"
    assert not _on_disk(app, CONTRACT)


def test_a_file_a_stored_message_has_stays(app):
    kept = _stored(app, "invoice", INVOICE, Auto_Submitted="auto-replied")
    failing = _stored(app, "invoice again", INVOICE)

    outcomes = process_batch(app, [kept, failing])

    assert [o.quarantined is not None for o in outcomes] == [False, True]
    assert _on_disk(app, INVOICE)
    with reading(app.engine) as conn:
        assert conn.execute(select(attachments.c.sha256)).scalars().all() == [hashlib.sha256(INVOICE).hexdigest()]


def test_retry_of_the_quarantined_mail_writes_its_files_again(app, tmp_path):
    raw_id = _stored(app, "contract", CONTRACT)
    [outcome] = process_batch(app, [raw_id])
    assert outcome.quarantined and not _on_disk(app, CONTRACT)

    (tmp_path / "overrides" / "requester" / "ticket_opened.txt.j2").unlink()   # the template mended
    assert requeue(app.engine, raw_id)
    outcome = process_raw(app, raw_id)

    assert outcome.quarantined is None and _state(app, raw_id) == "done"
    assert _on_disk(app, CONTRACT)
