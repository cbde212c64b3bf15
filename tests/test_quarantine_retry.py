"""`ticketd quarantine retry ID... | --all`: quarantined mail re-driven in arrival order, each outcome said."""

from __future__ import annotations

import smtplib

from sqlalchemy import select

from ingest.smtp import Receiver
from ticketd.pipeline import drain
from ticketd.store.tables import messages, raw_mail
from ticketd.views import list_quarantine
from tests.cli import cli_ok, run_cli


def _nested(depth: int, subject: str, mid: str, reply_to: str | None = None) -> bytes:
    """A customer mail whose text sits `depth` multiparts deep."""
    body = b"Content-Type: text/plain\r\n\r\n" + subject.encode() + b", in so many parts.\r\n"
    for n in range(depth):
        body = (b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n) + body
                + b"\r\n--b%d--\r\n" % n)
    threading = f"In-Reply-To: {reply_to}\r\nReferences: {reply_to}\r\n" if reply_to else ""
    return (f"From: cust@example.org\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            f"{threading}MIME-Version: 1.0\r\n").encode() + body


def _state(app) -> dict[str, tuple[str, bool]]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(raw_mail.c.message_id, raw_mail.c.state, raw_mail.c.dismissed_at))
        return {mid: (state, dismissed is not None) for mid, state, dismissed in rows}


def test_retry_takes_several_in_arrival_order_and_all_of_them_at_once(tmp_path, make_app, db_url):
    app = make_app(db_url, extra="max_mime_depth: 3\n")
    config = tmp_path / "ticketd.yaml"
    receiver = Receiver(app)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as client:
            for raw in (_nested(5, "Scanner jams", "<jam@x>"),
                        _nested(5, "Re: Scanner jams", "<jam-again@x>", reply_to="<jam@x>"),
                        _nested(5, "Newsletter", "<news@x>"),
                        _nested(40, "Deeper than any limit", "<deep@x>")):
                client.sendmail("cust@example.org", ["support@example.com"], raw)
    finally:
        receiver.stop()
    drain(app)
    ids = {q["message_id"]: q["id"] for q in list_quarantine(app.engine)}
    assert list(ids) == ["jam@x", "jam-again@x", "news@x", "deep@x"]
    cli_ok(config, "quarantine", "dismiss", str(ids["news@x"]))
    config.write_text(config.read_text().replace("max_mime_depth: 3", "max_mime_depth: 20"))

    # Named reply first: it is still taken after its original, and joins the original's ticket.
    said = cli_ok(config, "quarantine", "retry", str(ids["jam-again@x"]), str(ids["jam@x"]))
    assert said.splitlines() == [f"mail {ids['jam@x']} processed: ticket 1 (new)",
                                 f"mail {ids['jam-again@x']} processed: ticket 1 (references)"]
    with app.engine.connect() as conn:
        assert conn.execute(select(messages.c.message_id).where(messages.c.ticket_id == 1)
                            .order_by(messages.c.id)).scalars().all() == ["jam@x", "jam-again@x"]

    # --all: every quarantined mail nobody dismissed; one failing again makes the exit status 1.
    every = run_cli(config, "quarantine", "retry", "--all")
    assert every.returncode == 1 and every.stdout == ""
    assert (f"mail {ids['deep@x']} failed again and stays in quarantine:\n"
            "MailTooComplex: mail refused by the MIME limits: MIME nesting deeper than 20") in every.stderr
    assert _state(app)["news@x"] == ("quarantined", True)   # dismissed: left alone by --all
    assert _state(app)["deep@x"] == ("quarantined", False)

    # A dismissed one by its ID; an ID not in quarantine is said, and the others still go.
    mixed = run_cli(config, "quarantine", "retry", str(ids["jam@x"]), str(ids["news@x"]))
    assert mixed.returncode == 1
    assert f"mail {ids['jam@x']} is not in quarantine\n" in mixed.stderr
    assert mixed.stdout == f"mail {ids['news@x']} processed: ticket 2 (new)\n"

    cli_ok(config, "quarantine", "dismiss", str(ids["deep@x"]))
    assert cli_ok(config, "quarantine", "retry", "--all") == ("nothing to retry: no quarantined mail waits to "
                                                              "be looked at\n")
    assert run_cli(config, "quarantine", "retry").returncode == 2   # neither IDs nor --all
    assert run_cli(config, "quarantine", "retry", "1", "--all").returncode == 2
