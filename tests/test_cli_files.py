"""`ticketd tickets files`: the files on a ticket, and copies of them for one too large to go by mail."""

from __future__ import annotations

import hashlib
import json

from tests.cli import cli_ok, run_cli
from tests.test_erase import deliver, mail_bytes, ticket_of
from ticketd.store.files import attachment_path

LOG = b"log line\n" * 500


def test_files_are_listed_and_copied_under_their_names_without_overwriting(tmp_path, make_app, db_url):
    app = make_app(db_url)
    config = tmp_path / "ticketd.yaml"
    deliver(app, mail_bytes("cust@example.org", "Crash", "<crash@client.example.org>",
                            files=(("image001.png", b"\x89PNG first"), ("Überblick.txt", LOG))))
    ticket_id = ticket_of(app, "crash@client.example.org")
    deliver(app, mail_bytes("cust@example.org", f"Re: [#{ticket_id}] Crash", "<again@client.example.org>",
                            files=(("image001.png", b"\x89PNG second"),), In_Reply_To="<crash@client.example.org>"))
    assert ticket_of(app, "again@client.example.org") == ticket_id

    listed = json.loads(cli_ok(config, "tickets", "files", str(ticket_id), "--json"))
    assert [(f["filename"], f["size"]) for f in listed] == [("image001.png", 10), ("Überblick.txt", len(LOG)),
                                                            ("image001.png", 11)]
    assert listed[1]["sha256"] == hashlib.sha256(LOG).hexdigest() and listed[0]["from"] == "cust@example.org"
    assert "Überblick.txt (4500 bytes, application/octet-stream" in cli_ok(config, "tickets", "files", str(ticket_id))

    out = tmp_path / "out"
    (out).mkdir()
    (out / f"{listed[0]['message']}-image001.png").write_bytes(b"someone else's")
    copied = json.loads(cli_ok(config, "tickets", "files", str(ticket_id), "--out", str(out), "--json"))
    contents = [open(c["copied_to"], "rb").read() for c in copied]
    assert contents == [b"\x89PNG first", LOG, b"\x89PNG second"]
    assert (out / f"{listed[0]['message']}-image001.png").read_bytes() == b"someone else's"   # not overwritten
    assert len({c["copied_to"] for c in copied}) == 3

    attachment_path(app.settings.attachments_dir, listed[1]["sha256"]).unlink()
    said = cli_ok(config, "tickets", "files", str(ticket_id), "--out", str(tmp_path / "again"))
    assert "Überblick.txt: not on disk (erased), not copied" in said


def test_a_ticket_without_files_or_no_ticket(tmp_path, make_app, sqlite_url):
    app = make_app(sqlite_url)
    config = tmp_path / "ticketd.yaml"
    deliver(app, mail_bytes("cust@example.org", "Question", "<q@client.example.org>"))
    ticket_id = ticket_of(app, "q@client.example.org")
    assert f"ticket [#{ticket_id}] has no files" in cli_ok(config, "tickets", "files", str(ticket_id))
    assert json.loads(cli_ok(config, "tickets", "files", str(ticket_id), "--json")) == []
    missing = run_cli(config, "tickets", "files", "999")
    assert missing.returncode == 1 and "no ticket 999" in missing.stderr


def test_a_name_at_the_length_limit_is_copied_shortened_and_a_second_run_copies_nothing_again(
        tmp_path, make_app, sqlite_url):
    """A stored name is at most 255 bytes; the message id put before it made a name the file system
    refused (a traceback after some files), and each run copied the files before it again."""
    app = make_app(sqlite_url)
    config = tmp_path / "ticketd.yaml"
    long_name = "L" * 5000 + ".txt"
    deliver(app, mail_bytes("cust@example.org", "Logs", "<logs@client.example.org>",
                            files=(("a.log", LOG), (long_name, b"long"), ("ж" * 200 + ".pdf", b"cyrillic"))))
    ticket_id = ticket_of(app, "logs@client.example.org")
    out = tmp_path / "out"
    first = json.loads(cli_ok(config, "tickets", "files", str(ticket_id), "--out", str(out), "--json"))
    names = [c["copied_to"].rsplit("/", 1)[1] for c in first]
    assert all(len(name.encode()) <= 255 for name in names), names
    assert names[1].endswith("LLL.txt") and names[2].endswith("жж.pdf")
    assert [open(c["copied_to"], "rb").read() for c in first] == [LOG, b"long", b"cyrillic"]
    again = json.loads(cli_ok(config, "tickets", "files", str(ticket_id), "--out", str(out), "--json"))
    assert [c["copied_to"] for c in again] == [c["copied_to"] for c in first]
    assert len(list(out.iterdir())) == 3
