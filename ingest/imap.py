"""The IMAP poller: fetch new mail with BODY.PEEK[], commit it, and only then flag or move it.

One thread per mailbox. The order is what keeps mail safe: a fetch never
marks a message seen (BODY.PEEK[], RFC 3501 section 6.4.5), the raw bytes are
committed, and only then is the message flagged \\Seen or moved away.

What is new mail is said by the cursor, (mailbox, UIDVALIDITY, last UID),
not by \\Seen: every message with a UID above the cursor is taken whatever
its flags, because a person may read it in webmail or on a phone, or a Sieve
rule may flag it, before the poller gets to it. The cursor moves only after
the mail below it is committed and flagged or moved, so a crash or a dropped
connection in between brings those messages back above the cursor: they are
fetched again and the dedupe key makes the second copy harmless.

The first poll of a folder (no cursor yet), and the first poll after its
UIDVALIDITY changed (RFC 3501 section 2.3.1.1: the old UIDs mean nothing),
take only the unseen mail the folder already holds: the read mail there is
the mailbox's history, years of it perhaps, and stays where it is. Above
the highest UID the folder held then (not its UIDNEXT, which a server may
say wrong: `_highest_uid_selected`), all mail is taken. The first look is
saved at once, as the cursor with the unseen UIDs below it still owed, so a
restart goes on with it: mail a person reads meanwhile, or that arrives
read, is taken all the same. Mail over max_message_bytes stays owed too,
on the server, and is taken once the limit allows; so does a message the
server fails to hand out (FETCH_ATTEMPTS), so that it holds up no other.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, IMAPClientReadOnlyError, LoginError
from imapclient.imapclient import DELETED, SEEN, SocketTimeout
from imapclient.response_parser import parse_message_list

from ingest.imap_auth import log_in
from ingest.parse import dedupe_key
from ticketd.app import App
from ticketd.clock import utcnow
from ticketd.outage import Outage, said
from ticketd.settings import ImapSettings
from ticketd.store.db import unreachable
from ticketd.store.errors import StoreError
from ticketd.store.imap_cursor import load_cursor, save_cursor, uid_set
from ticketd.store.imap_health import record_poll_failure, record_poll_ok
from ticketd.store.inbox import store_raw

log = logging.getLogger("ticketd.imap")

# RFC 2177: a server may drop a client idling for 30 minutes; re-issue IDLE
# well before that, and often enough that a silently dead link (a NAT or
# firewall that forgot the connection) shows at DONE within a read timeout.
IDLE_RENEW_SECONDS = 60
# TCP keepalive: a peer that vanished without a FIN or RST is found by the
# kernel after about idle + interval * count seconds, even inside IDLE.
KEEPALIVE = dict(idle=30, interval=10, count=3)
# How long one wait inside IDLE lasts: the bound on how late stop() is seen.
IDLE_CHECK_SECONDS = 1.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
# While the database is out of reach (down, locked, full) the mail stays on
# the server and the round is tried again this often, on the same connection:
# the mailbox is not at fault, and mail should flow as soon as the database is back.
DATABASE_RETRY_SECONDS = 2.0
# Messages fetched per round trip, and the bytes one round trip may bring:
# a batch holds at most this much mail in memory (or one bigger message).
FETCH_BATCH = 10
FETCH_BATCH_BYTES = 8 * 1024 * 1024
TIMEOUTS = SocketTimeout(connect=10, read=60)
# A message the server fails to hand out (a FETCH answered NO, or the session
# ended with BYE, as Dovecot does when it cannot read the message's file, or
# a FETCH answered OK without it while a UID SEARCH still finds it):
# after a failed FETCH its messages are fetched one at a time, and one that
# fails alone this many times is set aside, left on the server and owed, so
# that it does not hold up every mail after it; it is asked for again this
# much later, and at each start.
FETCH_ATTEMPTS = 3
SET_ASIDE_SECONDS = 3600.0
# Taking what a first look owes, the owed list is saved again once this share
# of it was taken (at most this many UIDs written per UID taken), or once
# this long has passed: never after every batch, which cost O(n^2).
CURSOR_SAVE_SHARE = 16
CURSOR_SAVE_SECONDS = 10.0
# A SEARCH reply is one line, and imaplib refuses one over a megabyte
# (imaplib._MAXLINE): some 90,000 UIDs of ten digits. The first look at a
# bigger folder, and each round's search for new mail after an import, search it
# this many messages at a time (`_search_by_span`, `_search_above`).
SEARCH_SPAN = 50_000
# A poller that works says so in imap_health (for `ticketd status`) at most
# this often; a failure, and the first good poll after one, at once.
HEALTH_NOTE_SECONDS = 60.0


class MessageWithheld(Exception):
    """A UID FETCH answered OK without a message that is still in the folder."""


class FolderUnavailable(Exception):
    """The SELECT of the polled folder was refused: the folder named, and what to do."""

    def __init__(self, folder: str, refused: Exception) -> None:
        # RFC 3501 section 6.3.1: NO, no such mailbox or no access; the
        # server's words need not name it (Exchange: "The specified folder
        # could not be found in the store"), so this does.
        super().__init__(f"cannot open the folder {folder} ({refused}): it was deleted or renamed, or the account "
                         f"may no longer read it; create it again, or set imap[].folder to its new name")


class Poller:
    """Takes mail from one IMAP folder into raw_mail until stopped."""

    def __init__(self, app: App, box: ImapSettings) -> None:
        self.app = app
        self.box = box
        self._stop = threading.Event()
        self._client: IMAPClient | None = None
        self._delay = BACKOFF_FIRST_SECONDS
        self._uidvalidity = 0
        self._last_uid = 0
        self._owed: list[int] = []      # UIDs up to _last_uid still to take (store.imap_cursor)
        self._warned: set[int] = set()  # oversized UIDs this poller has logged
        self._suspects: set[int] = set()      # UIDs of a FETCH that failed: fetched alone until one works
        self._fetch_failures: dict[int, int] = {}   # UID -> failed FETCHes of it alone
        self._aside: dict[int, float] = {}    # UID -> monotonic time until which it is not asked for
        self._oversized: dict[int, int] = {}   # UID -> size of the mail over max_message_bytes seen this round
        # What status shows of that mail, as the last whole round found it (count, largest), and as written.
        self._oversized_found: tuple[int, int | None] = (0, None)
        # The UIDs set aside and still owed, as the last whole round found them: they wait unread in the
        # mailbox while it polls well, so status tells of them as of the mail over the limit.
        self._aside_found: tuple[int, ...] = ()
        self._found_noted: tuple | None = None
        self._ok_noted_at: float | None = None   # monotonic time of the last good poll written; None: failing
        self._database = Outage()   # the database out of reach: not the mailbox's failure (`_synced`)
        self._failing_with: str | None = None    # the mailbox's failure last said in the log (`_say_failure`)
        self._failing_since: float | None = None   # monotonic time that failure began; None: working
        self._move_failing: str | None = None    # the refused move to move_to last said in the log (`_move`)
        self._read_only: bool | None = None   # the folder as the last SELECT found it; None: not opened yet
        self._thread = threading.Thread(target=self._run, name=f"imap {box.key}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        client = self._client
        if self._thread.is_alive() and client is not None:
            # Stuck in a slow read: cut the socket. Whatever was stored but not
            # yet flagged is still above the cursor: fetched again, deduplicated.
            try:
                client.socket().shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._thread.join(timeout=5)

    # -- the connection loop -------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            client = None
            try:
                client = self._connect()
                self._client = client
                self._open_folder(client)
                while not self._stop.is_set():
                    if not self._synced(client):
                        self._stop.wait(DATABASE_RETRY_SECONDS)
                        continue
                    self._delay = BACKOFF_FIRST_SECONDS
                    self._say_working()
                    self._note_ok()
                    self._wait_for_mail(client)
                continue
            except StoreError as exc:
                problem = None if unreachable(exc) else (
                    f"storing failed, mail stays on the server and is taken later: {exc}")
                if problem is None:
                    self._database_away(exc)
            except Exception as exc:  # dropped connection, refused login, server error
                problem = failure_text(exc)
            finally:
                self._client = None
                if client is not None:
                    _close(client)
            if self._stop.is_set():
                break
            if problem is None:   # the database's outage (opening the folder reads the cursor)
                self._stop.wait(DATABASE_RETRY_SECONDS)
                continue
            self._say_failure(problem)
            self._note_failure(problem)
            self._back_off()

    def _say_failure(self, problem: str) -> None:
        """A failure of the mailbox in the log when it begins or changes; the same again only at debug level.

        The poller retries for as long as it fails (a changed password, a
        server down for the night), and a warning at every retry buried the
        log; `ticketd status` counts the attempts.
        """
        if self._failing_with is not None and _same_failure(problem, self._failing_with):
            log.debug("imap %s: %s; reconnecting in %.0fs", self.box.key, problem, self._delay)
            return
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self._failing_with = problem
        log.warning("imap %s: %s; reconnecting in %.0fs, then less often, up to every %.0fs; said again only if "
                    "the failure changes, and once the mailbox works again", self.box.key, problem, self._delay,
                    BACKOFF_MAX_SECONDS)

    def _say_working(self) -> None:
        """A whole round went through: the end of a failure `_say_failure` told of."""
        if self._failing_since is None:
            return
        log.info("imap %s: works again after %.0f s of failures", self.box.key,
                 time.monotonic() - self._failing_since)
        self._failing_with = self._failing_since = None

    def _synced(self, client: IMAPClient) -> bool:
        """One round (`_sync`); False when the database was out of reach."""
        try:
            self._sync(client)
        except StoreError as exc:
            if not unreachable(exc):
                raise
            self._database_away(exc)
            return False
        if (down := self._database.worked()) is not None:
            log.info("imap %s: the database takes mail again after %.0f s", self.box.key, down)
        return True

    def _database_away(self, error: StoreError) -> None:
        """The database is out of reach: logged once an outage, not counted against the mailbox."""
        if self._database.failed(error):
            log.warning("imap %s: cannot store mail: the database is out of reach (%s). Mail stays on the "
                        "server and is taken once it is back; said again only then", self.box.key, said(error))

    # -- what `ticketd status` shows -------------------------------------------

    def _note_ok(self) -> None:
        """A round went through: written at once after a failure, at start and when the mail left over the
        size limit or set aside changed, else once a HEALTH_NOTE_SECONDS."""
        now = time.monotonic()
        found = (self._oversized_found, self._aside_found)
        if (self._ok_noted_at is not None and now - self._ok_noted_at < HEALTH_NOTE_SECONDS
                and found == self._found_noted):
            return
        try:
            record_poll_ok(self.app.engine, self.box.key, utcnow(), oversized=found[0], set_aside=found[1])
        except Exception as exc:   # the database's trouble: the poller's own writes will say so
            log.debug("imap %s: could not record the good poll for status: %s", self.box.key, exc)
            return
        self._ok_noted_at, self._found_noted = now, found

    def _note_failure(self, problem: str) -> None:
        self._ok_noted_at = None
        try:
            record_poll_failure(self.app.engine, self.box.key, problem, utcnow())
        except Exception as exc:
            log.debug("imap %s: could not record the failure for status: %s", self.box.key, exc)

    def _back_off(self) -> None:
        self._stop.wait(self._delay)
        self._delay = min(self._delay * 2, BACKOFF_MAX_SECONDS)

    def _connect(self) -> IMAPClient:
        box = self.box
        context = None
        if box.ssl or box.starttls:
            context = ssl.create_default_context()
            if not box.ssl_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        client = IMAPClient(box.host, port=box.port, ssl=box.ssl, ssl_context=context, timeout=TIMEOUTS)
        try:
            _keep_alive(client.socket())
            if box.starttls:
                # RFC 3501 section 6.2.1: TLS before LOGIN, so the password
                # never crosses in clear; a server without STARTTLS is refused.
                client.starttls(context)
            log_in(client, box)
            if box.move_to and not client.folder_exists(box.move_to):
                _create_if_allowed(client, box.move_to)
        except Exception:
            _close(client)
            raise
        log.info("imap %s: connected", box.key)
        return client

    def _open_folder(self, client: IMAPClient) -> None:
        info = self._select(client)
        uidvalidity = int(info[b"UIDVALIDITY"])
        if uidvalidity != self._uidvalidity:
            # RFC 3501 section 2.3.1.1: under a new UIDVALIDITY the UIDs name other messages.
            self._suspects, self._fetch_failures, self._aside = set(), {}, {}
        self._uidvalidity = uidvalidity
        self._oversized = {}   # the next round, which takes what is owed again, finds them all
        cursor = load_cursor(self.app.engine, self.box.key)
        if cursor is not None and cursor.uidvalidity == uidvalidity:
            # Also after a reconnect or a restart in the middle of a first look: it goes on with what it owes.
            self._last_uid, self._owed = cursor.last_uid, list(cursor.owed)
            return
        if cursor is not None:
            # What was already stored under the old UIDs is recognised by its dedupe key.
            log.warning("imap %s: UIDVALIDITY changed from %s to %s; taking only the unseen mail already there",
                        self.box.key, cursor.uidvalidity, uidvalidity)
        top = _highest_uid_selected(client, info.get(b"EXISTS"))
        owed: list[int] = []
        if top > 0:
            unseen = _search_by_span(client, ["UID", f"1:{top}", "UNSEEN"], int(info.get(b"EXISTS", 0)))
            owed = sorted(u for u in unseen if u <= top)
        save_cursor(self.app.engine, self.box.key, uidvalidity, top, owed)
        self._last_uid, self._owed = top, owed
        log.info("imap %s: first poll under UIDVALIDITY %s: of the mail up to UID %s, taking the %s unseen "
                 "message(s) and leaving the read ones as they are; every message from UID %s on is taken",
                 self.box.key, uidvalidity, top, len(owed), top + 1)

    def _select(self, client: IMAPClient) -> dict:
        """SELECT the folder; one the account may only read (the server answers [READ-ONLY], RFC 3501
        section 6.3.1: a shared mailbox without write rights, files the server may not write) is opened
        read-only instead and polled all the same: the cursor, not \\Seen, says what is new."""
        try:
            try:
                info, read_only = client.select_folder(self.box.folder), False
            except IMAPClientReadOnlyError:   # imaplib refuses a SELECT answered READ-ONLY unless asked for one
                info, read_only = client.select_folder(self.box.folder, readonly=True), True
        except IMAPClientError as exc:
            if isinstance(exc, IMAPClientAbortError):
                raise
            raise FolderUnavailable(self.box.folder, exc) from exc
        if read_only and not self._read_only:
            moved = f", not moved to {self.box.move_to}" if self.box.move_to else ""
            log.warning("imap %s: the server opens %s read-only for this account: its mail is taken by UID and left "
                        "as it is there (not flagged \\Seen%s); give the account write rights on the folder "
                        "(RFC 4314: s, t, e) to have it marked", self.box.key, self.box.folder, moved)
        elif self._read_only and not read_only:
            log.info("imap %s: %s is writable again: mail taken from now on is marked", self.box.key,
                     self.box.folder)
        self._read_only = read_only
        return info

    # -- one round -----------------------------------------------------------

    def _sync(self, client: IMAPClient) -> None:
        """Store what the cursor owes and every message above it, whatever its flags, then flag or move it.

        Between batches a stop is heeded and the cursor is saved (the owed
        list now and then, `_take_owed`): what was stored but not yet saved
        as taken is fetched again and deduplicated.
        """
        _announced_new_mail(client)  # what is announced so far, this SEARCH sees
        if not self._take_owed(client):
            return
        last = self._last_uid
        # `n:*` always names the highest UID even when it is below n
        # (RFC 3501 section 6.4.8), hence the filter.
        uids = sorted(u for u in _search_above(client, last) if u > last)
        for start in range(0, len(uids), FETCH_BATCH):
            if self._stop.is_set():
                return
            listed = uids[start:start + FETCH_BATCH]
            self._owed += self._take(client, listed)
            save_cursor(self.app.engine, self.box.key, self._uidvalidity, listed[-1], self._owed)
            self._last_uid = listed[-1]
            self._note_ok()
        # A whole round: every message over the limit is owed, so it was listed and sized again.
        self._oversized_found = (len(self._oversized), max(self._oversized.values(), default=None))
        owed = set(self._owed)   # one expunged meanwhile is no longer owed: nothing waits
        self._aside_found = tuple(sorted(uid for uid in self._aside if uid in owed))

    def _take_owed(self, client: IMAPClient) -> bool:
        """Take what the cursor owes, saving it now and then (`_cursor_due`); False when stopped.

        The owed list may be tens of thousands of UIDs, and writing it all
        after every batch made taking it O(n^2). Between saves the saved
        list still holds what was taken since: a crash or a dropped
        connection fetches those again, and the dedupe key makes that harmless.
        """
        owed = self._owed
        kept: list[int] = []     # owed, and still there but over max_message_bytes or set aside
        done = saved_done = 0    # owed UIDs looked at: all of them, as of the last save
        saved_at = time.monotonic()
        try:
            while done < len(owed):
                if self._stop.is_set():
                    break
                kept += self._take(client, owed[done:done + FETCH_BATCH])
                done = min(done + FETCH_BATCH, len(owed))
                if done == len(owed) or _cursor_due(done - saved_done, len(owed) - done, saved_at):
                    self._save_owed(kept + owed[done:])
                    saved_done, saved_at = done, time.monotonic()
                self._note_ok()
        finally:
            self._owed = kept + owed[done:]
        if done > saved_done:   # stopped: a restart goes on from here
            self._save_owed(self._owed)
        return done == len(owed)

    def _save_owed(self, owed: list[int]) -> None:
        save_cursor(self.app.engine, self.box.key, self._uidvalidity, self._last_uid, owed)

    def _take(self, client: IMAPClient, listed: list[int]) -> list[int]:
        """Store the messages `listed` (at most FETCH_BATCH), then flag or move them; those left owed.

        Left owed: those too big to take, and those set aside because the
        server failed to hand them out (`_fetch`).
        """
        now = time.monotonic()
        aside = [uid for uid in listed if self._aside.get(uid, 0.0) > now]
        wanted = [uid for uid in listed if uid not in aside]
        sizes: dict[int, int] = {}
        seen: set[int] = set()
        for group in self._alone_if_suspect(wanted):
            fetched = self._fetch(client, group, [b"RFC822.SIZE", b"FLAGS"])
            sizes.update((uid, data.get(b"RFC822.SIZE", 0)) for uid, data in fetched.items())
            seen.update(uid for uid, data in fetched.items() if SEEN in data.get(b"FLAGS", ()))
        withheld: list[int] = []   # still there, but the FETCH left them out: owed
        for batch in fetch_batches(wanted, sizes, self.box.max_message_bytes, FETCH_BATCH_BYTES):
            for group in self._alone_if_suspect(batch):
                stored, left_out = self._store_batch(client, group, seen)
                self._mark_done(client, stored)
                withheld += self._withheld(client, left_out)
        # A UID the FETCH did not answer for and the SEARCH no longer finds was expunged meanwhile.
        too_big = [uid for uid in wanted if sizes.get(uid, 0) > self.box.max_message_bytes]
        self._warn_oversized(too_big, sizes)
        for uid in wanted:   # taken, expunged, or still too big
            self._oversized.pop(uid, None)
        self._oversized.update((uid, sizes[uid]) for uid in too_big)
        return sorted(too_big + aside + withheld)

    def _withheld(self, client: IMAPClient, uids: list[int]) -> list[int]:
        """Of `uids`, which a UID FETCH answered OK without, those still in the folder: a failed fetch of each.

        RFC 3501 section 6.4.8 lets a UID FETCH leave out a UID that no
        longer exists, without an error; Exchange under load, and Dovecot for
        a message it fails to read, leave out one that does. Only a UID SEARCH
        tells the two apart: the expunged one is no longer owed, the other
        stays owed and counts toward FETCH_ATTEMPTS, as a FETCH answered NO.
        """
        if not uids:
            return []
        there = set(client.search(["UID", uid_set(uids)]))
        withheld = [uid for uid in uids if uid in there]
        self._fetched([uid for uid in uids if uid not in there])   # gone: nothing more to ask for
        for uid in withheld:
            self._suspects.add(uid)
            self._fetch_failed(uid, MessageWithheld(f"the server answered the FETCH of uid {uid} without it, "
                                                    "though it is still in the folder"))
        return withheld

    def _alone_if_suspect(self, uids: list[int]) -> list[list[int]]:
        """`uids` in order, as one FETCH for those no FETCH failed on and one for each of the others."""
        groups: list[list[int]] = []
        for uid in uids:
            if uid in self._suspects or not groups or groups[-1][-1] in self._suspects:
                groups.append([uid])
            else:
                groups[-1].append(uid)
        return groups

    def _fetch(self, client: IMAPClient, uids: list[int], items: list[bytes]) -> dict:
        """UID FETCH `items`; on failure the UIDs are fetched alone from now on, and one that fails alone
        FETCH_ATTEMPTS times is set aside. The failure still ends the round: the session may be gone."""
        try:
            return client.fetch(uids, items)
        except Exception as exc:
            self._suspects.update(uids)
            if len(uids) == 1 and _server_failed(exc):
                self._fetch_failed(uids[0], exc)
            raise

    def _fetch_failed(self, uid: int, error: Exception) -> None:
        failures = self._fetch_failures[uid] = self._fetch_failures.get(uid, 0) + 1
        if failures < FETCH_ATTEMPTS:
            return
        first = uid not in self._aside
        self._aside[uid] = time.monotonic() + SET_ASIDE_SECONDS
        # Like mail over max_message_bytes: nobody can be told by mail, so it
        # stays as it is on the server for a person to look at, and is owed.
        (log.warning if first else log.debug)(
            "imap %s: uid %s cannot be fetched: the server failed %s times to hand it out (last: %s); it stays "
            "as it is in %s, the mail after it is taken, and it is asked for again in %.0f minutes and at the "
            "next start", self.box.key, uid, failures, failure_text(error), self.box.folder,
            SET_ASIDE_SECONDS / 60)

    def _fetched(self, uids: list[int]) -> None:
        """The server handed out these messages: no longer suspects."""
        for uid in uids:
            self._suspects.discard(uid)
            self._fetch_failures.pop(uid, None)
            self._aside.pop(uid, None)

    def _warn_oversized(self, uids: list[int], sizes: dict[int, int]) -> None:
        for uid in uids:
            if uid in self._warned:
                continue   # asked again each round, told once
            self._warned.add(uid)
            # Like the receiver's 552, but nobody can be told by mail: the
            # message stays on the server, untouched, for a person to handle,
            # and is taken if max_message_bytes is raised.
            log.warning("imap %s: uid %s is %s bytes, over max_message_bytes (%s); not taken, it stays "
                        "as it is in %s and is taken once max_message_bytes allows it", self.box.key, uid,
                        sizes[uid], self.box.max_message_bytes, self.box.folder)

    def _store_batch(self, client: IMAPClient, batch: list[int], seen: set[int]) -> tuple[list[int], list[int]]:
        """Fetch and commit `batch`: the UIDs stored, and those the FETCH left out (expunged, or withheld)."""
        fetched = self._fetch(client, batch, [b"BODY.PEEK[]"])
        left_out = [uid for uid in batch if fetched.get(uid, {}).get(b"BODY[]") is None]
        self._fetched([uid for uid in batch if uid not in left_out])
        stored: list[int] = []
        try:
            for uid in batch:
                if uid in left_out:   # `_withheld` tells which are still there
                    continue
                raw = fetched[uid][b"BODY[]"]
                key, message_id = dedupe_key(raw)
                result = store_raw(self.app.engine, raw, source="imap", dedupe_key=key,
                                   message_id=message_id, mailbox=self.box.key)
                log.info("imap %s: uid %s Message-ID %s %s raw mail %s%s", self.box.key, uid, message_id or "none",
                         "already stored as" if result.duplicate else "stored as", result.raw_id,
                         " (a different mail reusing the Message-ID of one already stored)"
                         if result.derived else "")
                if uid in seen and not result.duplicate:
                    # Read in webmail or on a phone, or flagged by a filter,
                    # before the poller got to it: new mail all the same.
                    log.info("imap %s: uid %s Message-ID %s was already \\Seen on the server before it was "
                             "polled; taken as new mail all the same", self.box.key, uid, message_id or "none")
                stored.append(uid)
                # Progress: the next dropped connection is retried at once, not after a grown delay.
                self._delay = BACKOFF_FIRST_SECONDS
        finally:
            if stored:
                self.app.mail_arrived.set()
        return stored, left_out

    def _mark_done(self, client: IMAPClient, uids: list[int]) -> None:
        """Only called once the mail is committed: now it may be flagged or moved (not in a read-only folder)."""
        if not uids or self._read_only:
            return
        client.add_flags(uids, [SEEN], silent=True)
        if self.box.move_to:
            self._move(client, uids)

    def _move(self, client: IMAPClient, uids: list[int]) -> None:
        """Move the flagged `uids` to move_to; one the server refuses leaves them flagged where they are.

        Moving is tidying: a refusal (the account lost its rights on the
        folder, RFC 4314) must not stop the mail after them, nor have them
        fetched again at every round. It is said once, as `_say_failure` does.
        """
        try:
            self._move_or_create(client, uids)
        except IMAPClientError as exc:
            if isinstance(exc, IMAPClientAbortError):   # the session ended: the round is retried
                raise
            problem = failure_text(exc)
            if self._move_failing is None or not _same_failure(problem, self._move_failing):
                log.warning("imap %s: cannot move taken mail to %s: %s; it stays flagged \\Seen in %s and the mail "
                            "after it is taken all the same; create the folder, or give the account the rights "
                            "to it (RFC 4314: i; k to create it), or change move_to; said again only if this "
                            "changes, and once moving works again", self.box.key, self.box.move_to, problem,
                            self.box.folder)
            self._move_failing = problem
            return
        if self._move_failing is not None:
            log.info("imap %s: taken mail is moved to %s again", self.box.key, self.box.move_to)
            self._move_failing = None

    def _move_or_create(self, client: IMAPClient, uids: list[int]) -> None:
        """Move `uids`; a folder a person deleted or renamed meanwhile ([TRYCREATE], RFC 3501 section 6.4.7) is
        created again, once, and the move tried again."""
        try:
            _move(client, uids, self.box.move_to)
        except IMAPClientError as exc:
            if isinstance(exc, IMAPClientAbortError) or "[TRYCREATE]" not in str(exc):
                raise
            try:
                client.create_folder(self.box.move_to)
            except IMAPClientError as refused:
                if isinstance(refused, IMAPClientAbortError):
                    raise
                raise IMAPClientError(f"the folder is gone and could not be created: {refused}") from refused
            log.warning("imap %s: the folder %s that move_to names was gone (deleted or renamed): created it again",
                        self.box.key, self.box.move_to)
            _move(client, uids, self.box.move_to)

    # -- between rounds ------------------------------------------------------

    def _wait_for_mail(self, client: IMAPClient) -> None:
        if _announced_new_mail(client):
            # Mail that arrived during the round was announced in the reply
            # to one of its commands; IDLE would not announce it again.
            return
        if self.box.idle and client.has_capability("IDLE"):
            self._idle(client)
        elif not self._stop.wait(self.box.poll_seconds):
            # RFC 3501 section 6.1.2: NOOP is the poll. A server may answer a
            # SEARCH from the view the session already had (Dovecot does), so
            # without it new mail would wait for one more round.
            client.noop()

    def _idle(self, client: IMAPClient) -> None:
        """Wait in IDLE (RFC 2177) until the server reports a change, or renew it.

        IDLE ends at least every `poll_seconds` for a SEARCH too (issue 2:
        mail is a ticket within `poll_seconds`): under load a new mail's
        EXISTS once went by unseen and the poller sat in IDLE beside the
        unseen mail. An EXISTS read while IDLE began, which imaplib keeps
        with the unrequested responses where idle_check does not look, ends
        it at once.
        """
        client.idle()
        renew_at = time.monotonic() + min(IDLE_RENEW_SECONDS, self.box.poll_seconds)
        try:
            if _announced_new_mail(client):
                return
            while not self._stop.is_set() and time.monotonic() < renew_at:
                began = time.monotonic()
                responses = client.idle_check(timeout=IDLE_CHECK_SECONDS)
                if any(r[:1] != (b"OK",) for r in responses):
                    return  # EXISTS, EXPUNGE, FETCH or BYE: look at the folder again
                if not responses and time.monotonic() - began < IDLE_CHECK_SECONDS / 2:
                    # Readable but nothing parsed: the server closed the
                    # connection. Ending IDLE below raises and reconnects.
                    return
        finally:
            client.idle_done()


def failure_text(exc: Exception) -> str:
    """What went wrong, for the log and `ticketd status`: a refused login says so in the server's words."""
    if isinstance(exc, LoginError):
        # imapclient wraps the server's bytes in their repr: b'[AUTHENTICATIONFAILED] Authentication failed.'
        said = str(exc)
        if said[:2] in ("b'", 'b"') and said[-1:] == said[1]:
            said = said[2:-1]
        return f"login refused (LoginError): {said}"
    return f"{type(exc).__name__}: {exc}"


def _cursor_due(taken: int, left: int, saved_at: float) -> bool:
    """Whether the owed list is saved again, `taken` UIDs and some time after the last save, `left` still owed.

    Each save writes the `left` UIDs: once a CURSOR_SAVE_SHARE of them were
    taken, that costs a bounded number of UIDs written per UID taken; and
    at least every CURSOR_SAVE_SECONDS, so a crash fetches little again.
    """
    return taken * CURSOR_SAVE_SHARE >= left or time.monotonic() - saved_at >= CURSOR_SAVE_SECONDS


def _server_failed(error: Exception) -> bool:
    """Whether the server answered the FETCH with a failure (NO, BAD, or BYE with its reason), rather than the
    connection breaking (a reset, a timeout, EOF): only the former says anything about the message, and a
    flaky link must not set a big mail aside for an hour."""
    if isinstance(error, OSError):
        return False
    return "socket error" not in str(error)   # imaplib's abort for a connection that ended: "socket error: EOF"


# Dovecot ends a tagged reply with the time it took, in two or three terms: "(0.001 + 0.000 secs)",
# "(0.002 + 0.000 + 0.001 secs)".
_DOVECOT_TIMING = re.compile(r"\s*\([\d.+ ]*secs\)")


def _same_failure(one: str, other: str) -> bool:
    """Whether two failure texts tell the same failure: numbers and Dovecot's timing aside."""
    def bare(text: str) -> str:
        return re.sub(r"\d+", "#", _DOVECOT_TIMING.sub("", text))
    return bare(one) == bare(other)


def fetch_batches(uids: list[int], sizes: dict[int, int], max_message: int, max_batch: int) -> list[list[int]]:
    """`uids` in order, without those over `max_message`, cut so one fetch brings at most `max_batch` bytes.

    A message bigger than `max_batch` (but within `max_message`) is fetched on its own.
    A UID without a size (expunged meanwhile) is kept: the fetch finds nothing.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if size > max_message:
            continue
        if current and current_bytes + size > max_batch:
            batches.append(current)
            current, current_bytes = [], 0
        current.append(uid)
        current_bytes += size
    if current:
        batches.append(current)
    return batches


def _move(client: IMAPClient, uids: list[int], target: str) -> None:
    """MOVE `uids` to `target` (RFC 6851), or where the server lacks it COPY, flag \\Deleted and expunge."""
    if client.has_capability("MOVE"):
        client.move(uids, target)
        return
    client.copy(uids, target)
    client.add_flags(uids, [DELETED], silent=True)
    if client.has_capability("UIDPLUS"):  # RFC 4315: expunge only these
        client.uid_expunge(uids)
    else:
        # Plain EXPUNGE (RFC 3501 section 6.4.3) also removes whatever
        # else in the folder carries \Deleted: the best a server without
        # UIDPLUS allows.
        client.expunge()


def _create_if_allowed(client: IMAPClient, folder: str) -> None:
    """CREATE `folder`; one the server refuses is left to the first move, which says why once (`Poller._move`)
    while the mail is taken all the same."""
    try:
        client.create_folder(folder)
    except IMAPClientError as exc:
        if isinstance(exc, IMAPClientAbortError):
            raise
        log.debug("could not create %s: %s", folder, exc)


def _search_by_span(client: IMAPClient, criteria: list[str], exists: int) -> set[int]:
    """UID SEARCH `criteria` in a folder of `exists` messages, SEARCH_SPAN message numbers at a time, the last first.

    The message numbers name spans however sparse the UIDs (RFC 3501
    section 6.4.8: UID SEARCH takes them unless the UID key is used). From
    the last span down, an expunge meanwhile moves a message into a span
    still to search, never out of it; `*` ends the first, so that it stays
    a valid set when mail was expunged since `exists` was counted.
    """
    if exists <= SEARCH_SPAN:
        return set(client.search(criteria))
    found: set[int] = set()
    for high in range(exists, 0, -SEARCH_SPAN):
        low = max(1, high - SEARCH_SPAN + 1)
        found.update(client.search([f"{low}:{'*' if high == exists else high}", *criteria]))
    return found


def _search_above(client: IMAPClient, last: int) -> set[int]:
    """The UIDs above `last` (and, as `n:*` names it, the highest UID), SEARCH_SPAN messages at a time.

    An import may bring more mail between two rounds than one SEARCH reply
    holds. UIDs ascend with the message numbers (RFC 3501 section 2.3.1.1),
    so the new mail is the folder's last messages: the spans are searched
    from the last one down, and the first that finds none ends the search,
    so a big folder with little new mail costs one or two searches.
    """
    exists = _message_count(client)
    if exists <= SEARCH_SPAN:
        return set(client.search(["UID", f"{last + 1}:*"]))
    found: set[int] = set()
    for high in range(exists, 0, -SEARCH_SPAN):
        low = max(1, high - SEARCH_SPAN + 1)
        span = client.search([f"{low}:{'*' if high == exists else high}", "UID", f"{last + 1}:*"])
        found.update(span)
        if not any(uid > last for uid in span):
            break
    return found


def _message_count(client: IMAPClient) -> int:
    """How many messages the selected folder holds: a SEARCH (by message number) for `*`, the last one.

    RFC 3501 section 9: `*` is the largest number in use, for message
    numbers the count; the reply is that one number, or none in an empty folder.
    """
    data = client._raw_command_untagged(b"SEARCH", [b"*"], uid=False)
    return max(parse_message_list(data), default=0)


def _highest_uid_selected(client: IMAPClient, exists: int | None) -> int:
    """The UID of the last of the `exists` messages the SELECT reply counted; 0 in an empty folder.

    Not UIDNEXT - 1: RFC 3501 section 2.3.1.1 calls UIDNEXT a prediction,
    "not intended to provide any guarantee that any message will have this
    unique identifier". A server saying more than it then assigns hid the
    mail arriving after the first look below the cursor for good; one saying
    less had the read mail above it taken as new. Only this holds: every
    message added later gets a higher UID than those there (section 2.3.1.1).
    A UID SEARCH by message number (section 6.4.8) answers one UID, where
    SEARCH ALL over a big folder is more than imaplib reads on a line; and
    the number is `exists`, not `*`, so mail that arrived since the SELECT,
    read or not, stays above the cursor and is taken. Message numbers move
    only with an EXPUNGE response, and none came between (section 7.4.1).
    """
    if exists is not None and int(exists) <= 0:
        return 0
    found = client.search([str(int(exists))]) if exists is not None else []
    if not found:   # no count, or one the server does not know after all: the highest UID now, a little later
        found = client.search(["*"])
    return max(found, default=0)


def _announced_new_mail(client: IMAPClient) -> bool:
    """Whether the server sent EXISTS (RFC 3501 section 7.3.1) since the last call.

    A server may announce new mail with the reply to any command. imaplib
    keeps such unrequested responses in `untagged_responses`, the same dict
    imapclient reads SELECT and CAPABILITY data from.
    """
    return client._imap.untagged_responses.pop("EXISTS", None) is not None


def _keep_alive(sock: socket.socket) -> None:
    """Turn on TCP keepalive with short timers where the platform lets us set them."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE["idle"]), ("TCP_KEEPINTVL", KEEPALIVE["interval"]),
                        ("TCP_KEEPCNT", KEEPALIVE["count"])):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass
