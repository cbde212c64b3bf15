"""The ingest floor: the least any mail-to-ticket server does per mail, in Python, for issue 2's aim.

Not a product and not ticketd: it measures how fast this machine turns the
benchmark's mails into tickets when nothing is done but what every such
server must do, so that ticketd's share of the ceiling can be read against
it. Two processes, as the daemon has its receiver and its processing apart:

- the receiver, an aiosmtpd server whose handler queues the mail's bytes
  for a group commit (one SQLite transaction, WAL, synchronous=FULL, for
  every mail waiting) and answers 250 once it is durable;
- the processor, which reads waiting rows in batches of up to 64 outside
  any write lock, parses each with the stdlib parser (`compat32`, the
  fastest of the stdlib's policies), takes sender, subject and threading
  headers and the first text part, and in one short transaction a batch
  joins each mail to the ticket of a Message-ID it names or opens one.

Left out, and in ticketd: the dedupe key and look-up, the Received line,
charset repair, reply and signature stripping, HTML made into text,
attachments stored by sha256, loop checks, routing rules, timers, events,
acknowledgements composed and sent, assignment.

Run by `bench/ingest.py --targets ceiling,floor,...`; alone:
    .venv/bin/python bench/floor.py --listen 127.0.0.1:2527 --db /tmp/floor.db
"""

from __future__ import annotations

import argparse
import asyncio
import email
import multiprocessing as mp
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_mail (id INTEGER PRIMARY KEY, state TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS raw_mail_state ON raw_mail (state);
CREATE TABLE IF NOT EXISTS tickets (id INTEGER PRIMARY KEY, subject TEXT, requester TEXT);
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL, raw_id INTEGER NOT NULL,
                                     message_id TEXT, sender TEXT, subject TEXT, text TEXT);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id);
"""


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the 250, as the ceiling's fsync
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class GroupCommitHandler:
    """Answers 250 once the mail's row is committed, with every other mail waiting in the same transaction."""

    def __init__(self, path: str) -> None:
        self.conn = connect(path)
        self.waiting: list[tuple[bytes, asyncio.Future]] = []
        self.flushing = False
        self.writer = ThreadPoolExecutor(1)

    async def handle_DATA(self, server, session, envelope):
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((envelope.original_content or envelope.content, future))
        if not self.flushing:
            self.flushing = True
            asyncio.ensure_future(self._flush())
        await future
        return "250 2.0.0 OK"

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self.waiting:
            batch, self.waiting = self.waiting, []
            await loop.run_in_executor(self.writer, self._commit, [data for data, _ in batch])
            for _, future in batch:
                future.set_result(None)
        self.flushing = False

    def _commit(self, datas: list[bytes]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT INTO raw_mail (state, data) VALUES ('received', ?)", [(d,) for d in datas])
        self.conn.execute("COMMIT")


def first_text(message: email.message.Message) -> str:
    """The first text/plain part, decoded by its declared charset (replacing what does not decode)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True) or b""
            try:
                return payload.decode(part.get_content_charset() or "us-ascii", "replace")
            except LookupError:
                return payload.decode("latin-1")
    return ""


def referenced_ids(message: email.message.Message) -> list[str]:
    """The Message-IDs a mail names as its parents, nearest first."""
    names = (message.get("In-Reply-To") or "").split() + list(reversed((message.get("References") or "").split()))
    return [name.strip() for name in names if name.startswith("<")]


def process(path: str, stop) -> None:
    """Turns waiting raw rows into tickets and messages until told to stop."""
    conn = connect(path)
    while not stop.is_set():
        rows = conn.execute("SELECT id, data FROM raw_mail WHERE state = 'received' ORDER BY id LIMIT 64").fetchall()
        if not rows:
            time.sleep(0.005)
            continue
        parsed = []
        for raw_id, data in rows:
            message = email.message_from_bytes(data)
            parsed.append((raw_id, str(message.get("Message-ID", "")).strip(), referenced_ids(message),
                           str(message.get("From", "")), str(message.get("Subject", "")), first_text(message)))
        conn.execute("BEGIN IMMEDIATE")
        for raw_id, message_id, parents, sender, subject, text in parsed:
            ticket = None
            for parent in parents:
                found = conn.execute("SELECT ticket_id FROM messages WHERE message_id = ?", (parent,)).fetchone()
                if found:
                    ticket = found[0]
                    break
            if ticket is None:
                ticket = conn.execute("INSERT INTO tickets (subject, requester) VALUES (?, ?)",
                                      (subject, sender)).lastrowid
            conn.execute("INSERT INTO messages (ticket_id, raw_id, message_id, sender, subject, text) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (ticket, raw_id, message_id, sender, subject, text))
        conn.executemany("UPDATE raw_mail SET state = 'done' WHERE id = ?", [(row[0],) for row in rows])
        conn.execute("COMMIT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:2527")
    parser.add_argument("--db", required=True, help="the SQLite file (made if missing)")
    args = parser.parse_args()
    connect(args.db).executescript(SCHEMA)
    spawn = mp.get_context("spawn")
    stop = spawn.Event()
    processor = spawn.Process(target=process, args=(args.db, stop))
    processor.start()
    host, _, port = args.listen.rpartition(":")
    controller = Controller(GroupCommitHandler(args.db), hostname=host, port=int(port), decode_data=False,
                            data_size_limit=26_214_400)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    controller.start()
    print("floor running", flush=True)
    stopped.wait()
    controller.stop()
    stop.set()
    processor.join(30)


if __name__ == "__main__":
    main()
