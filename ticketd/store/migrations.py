"""Schema versions: the numbered steps that bring an older database to what schema.sql builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, inspect, text

from ticketd.clock import utcnow

# The schema as it stood before versioning: a database with raw_mail but
# no schema_version table has it (tests/fixtures/schema_v1.sql keeps it).
BASELINE = 1


class SchemaVersionError(Exception):
    """The database's schema version is one this ticketd must not touch."""


class SchemaChangeRefused(SchemaVersionError):
    """The database refused ticketd's role the change its schema needs (PostgreSQL: a privilege the role lacks).

    A SchemaVersionError, so that every command naming one on a line names this one too: no
    ticketd can start on such a database until the role is granted what it needs.
    """


@dataclass(frozen=True)
class Step:
    """One change to an existing database, DDL or a data fix, run in the migrating transaction."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_schema_version(conn: Connection) -> None:
    """The version table itself, so an upgraded database records its steps as a fresh one does."""
    # Written out here, not read from schema.sql: a step must make the same
    # change whatever later steps do to the table.
    conn.execute(text(
        "CREATE TABLE schema_version ("
        " version INTEGER PRIMARY KEY,"
        " description TEXT NOT NULL,"
        " applied_at TIMESTAMP NOT NULL)"))


def _forget_cursors_at_uid_zero(conn: Connection) -> None:
    """Cursors left at UID 0 by the \\Seen-based poller: the mailbox gets a first look again."""
    # The poller before the UID cursor (commit c61b211) saved last_uid = 0
    # at a folder's first poll and moved it only for unseen mail it took, so
    # a folder holding only read mail still says 0. The poller now takes
    # every UID above the cursor, read or not: that folder's whole read
    # history would become tickets. With no row, ingest/imap.py does what it
    # does for a new folder (and for a changed UIDVALIDITY): take the unseen
    # mail already there, leave the read mail, and take everything above the
    # highest UID there at that look. Mail already stored is recognised by its
    # dedupe key. A cursor above 0 is kept: the mail up to it was looked at.
    # The current poller saves 0 only for a folder that was empty at its
    # first look, so a second first look there leaves out at most mail that
    # came while ticketd was stopped and was read before it started again.
    conn.execute(text("DELETE FROM imap_cursor WHERE last_uid = 0"))


def _add_merged_into(conn: Connection) -> None:
    """tickets.merged_into, NULL on every existing ticket, and its index."""
    # ADD COLUMN with REFERENCES and no default: SQLite allows it (the new
    # column is NULL everywhere), PostgreSQL too. The index serves the
    # lookup of tickets merged into one being erased, and PostgreSQL's own
    # foreign key check when a ticket is deleted.
    conn.execute(text("ALTER TABLE tickets ADD COLUMN merged_into INTEGER REFERENCES tickets (id)"))
    conn.execute(text("CREATE INDEX tickets_merged_into ON tickets (merged_into)"))


def _add_agent_absences(conn: Connection) -> None:
    """agent_absences, empty: no agent has set an absence of their own yet."""
    conn.execute(text(
        "CREATE TABLE agent_absences ("
        " agent VARCHAR(320) PRIMARY KEY,"
        " since TIMESTAMP NOT NULL,"
        " until TIMESTAMP)"))


def _add_imap_health(conn: Connection) -> None:
    """imap_health, empty: each poller writes its row at its next poll."""
    conn.execute(text(
        "CREATE TABLE imap_health ("
        " mailbox VARCHAR(512) PRIMARY KEY,"
        " last_ok_at TIMESTAMP,"
        " error TEXT,"
        " failing_since TIMESTAMP,"
        " failures INTEGER NOT NULL DEFAULT 0,"
        " updated_at TIMESTAMP NOT NULL)"))


def _add_outbox_line_index(conn: Connection) -> None:
    """outbox_line: the unsent rows of each line, which the claim and the wake-up look up."""
    # In the migrating transaction, as every step: on PostgreSQL it holds the
    # outbox's writers while it reads the table once; only unsent rows go in.
    conn.execute(text("CREATE INDEX outbox_line ON outbox (ticket_id, recipient, id)"
                      " WHERE state = 'pending' OR state = 'sending'"))


def _add_timer_rules(conn: Connection) -> None:
    """timer_rules, empty: the first start records the rules in force, and re-plans from the next change on."""
    conn.execute(text(
        "CREATE TABLE timer_rules ("
        " id INTEGER PRIMARY KEY,"
        " rules_hash VARCHAR(64) NOT NULL,"
        " timing TEXT NOT NULL,"
        " planned_at TIMESTAMP NOT NULL)"))


def _add_outbox_sent_index(conn: Connection) -> None:
    """outbox_sent: when each mail went, whose latest `ticketd status` reads."""
    conn.execute(text("CREATE INDEX outbox_sent ON outbox (sent_at)"))


def _add_dismissed(conn: Connection) -> None:
    """dismissed_at, dismissed_by and dismiss_reason on raw_mail and outbox, NULL: nothing dismissed yet."""
    for table in ("raw_mail", "outbox"):
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN dismissed_at TIMESTAMP"))
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN dismissed_by VARCHAR(320)"))
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN dismiss_reason TEXT"))


def _add_imap_owed(conn: Connection) -> None:
    """imap_cursor.owed, NULL: a cursor saved before it owes nothing, as the poller then left it."""
    conn.execute(text("ALTER TABLE imap_cursor ADD COLUMN owed TEXT"))


def _add_imap_oversized(conn: Connection) -> None:
    """imap_health.oversized and oversized_largest: none known until each poller's next round counts them."""
    conn.execute(text("ALTER TABLE imap_health ADD COLUMN oversized INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE imap_health ADD COLUMN oversized_largest BIGINT"))


def _add_imap_set_aside(conn: Connection) -> None:
    """imap_health.set_aside, NULL: none known until each poller sets a message aside again."""
    conn.execute(text("ALTER TABLE imap_health ADD COLUMN set_aside TEXT"))


def _add_desk_secrets(conn: Connection) -> None:
    """desk_secrets, empty: the next process adopts the key it finds under its data_dir (ticketd/signing_key.py)."""
    conn.execute(text(
        "CREATE TABLE desk_secrets ("
        " name VARCHAR(64) PRIMARY KEY,"
        " value TEXT NOT NULL,"
        " created_at TIMESTAMP NOT NULL)"))


def _add_outbox_claimed_by(conn: Connection) -> None:
    """outbox.claimed_by, NULL: a claim made before names were kept is taken back by its lease alone."""
    conn.execute(text("ALTER TABLE outbox ADD COLUMN claimed_by VARCHAR(200)"))


def _index_attachment_files(conn: Connection) -> None:
    """attachments_sha256: which rows name a stored file, asked at each file a mail sends and by erasure."""
    conn.execute(text("CREATE INDEX attachments_sha256 ON attachments (sha256)"))


def _index_raw_mail_ticket(conn: Connection) -> None:
    """raw_mail_ticket: the mail of one ticket, asked by merges, erasures and the sweep of due timers."""
    conn.execute(text("CREATE INDEX raw_mail_ticket ON raw_mail (ticket_id)"))


# In order, numbered from BASELINE + 1 without gaps. A change to schema.sql
# needs a step here making the same change to an existing database;
# tests/test_schema_migrations.py fails until the two agree.
STEPS: tuple[Step, ...] = (
    Step(2, "schema_version table records the steps applied", _create_schema_version),
    Step(3, "IMAP cursors at UID 0 from the \\Seen-based poller take a first look again",
         _forget_cursors_at_uid_zero),
    Step(4, "tickets.merged_into records `ticketd tickets merge`", _add_merged_into),
    Step(5, "agent_absences records the #away an agent sets by mail", _add_agent_absences),
    Step(6, "imap_health records how each IMAP poller fares, for `ticketd status`", _add_imap_health),
    Step(7, "outbox_line indexes the unsent mail of each ticket and recipient, in queued order",
         _add_outbox_line_index),
    Step(8, "timer_rules records the rules the armed timers follow, re-planned at start if the file changed",
         _add_timer_rules),
    Step(9, "outbox_sent indexes when mail went out, for `ticketd status`", _add_outbox_sent_index),
    Step(10, "quarantined and failed mail an admin dismissed records who, when and why", _add_dismissed),
    Step(11, "imap_cursor.owed keeps the UIDs a first look still has to take, across a restart",
         _add_imap_owed),
    Step(12, "imap_health counts the mail left on the server over max_message_bytes, for `ticketd status`",
         _add_imap_oversized),
    Step(13, "desk_secrets keeps the signing key every host shares when ticketd.yaml sets none",
         _add_desk_secrets),
    Step(14, "outbox.claimed_by names the process sending a row, whose end the sweep sees at once",
         _add_outbox_claimed_by),
    Step(15, "imap_health names the messages the server refused to hand out, set aside, for `ticketd status`",
         _add_imap_set_aside),
    Step(16, "an index on attachments.sha256 answers which rows name a stored file", _index_attachment_files),
    Step(17, "an index on raw_mail.ticket_id answers which mail a ticket has, quarantined replies included",
         _index_raw_mail_ticket),
)
LATEST = STEPS[-1].version


def database_version(conn: Connection) -> int | None:
    """The schema version of the database; None when it holds no ticketd tables yet."""
    tables = set(inspect(conn).get_table_names())
    if "raw_mail" not in tables:
        return None
    if "schema_version" not in tables:
        return BASELINE
    version = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    if version is None:
        raise SchemaVersionError("the schema_version table is empty: the database's schema version is unknown; "
                                 "restore it from a backup or insert the version it has")
    return int(version)


def stamp(conn: Connection, version: int, description: str) -> None:
    """Record that the database now has schema `version`."""
    conn.execute(text("INSERT INTO schema_version (version, description, applied_at) VALUES (:v, :d, :at)"),
                 {"v": version, "d": description, "at": utcnow()})


def upgrade(conn: Connection, current: int) -> list[Step]:
    """Apply, in order, every step above `current`, recording each; the steps applied."""
    if current > LATEST:
        # Its newer steps may have changed what this code reads and writes.
        raise SchemaVersionError(
            f"the database has schema version {current}, but this ticketd knows only up to version {LATEST}: "
            f"a newer ticketd has upgraded it. Run that newer ticketd (or a later one); this one leaves "
            f"the database untouched")
    pending = [step for step in STEPS if step.version > current]
    for step in pending:
        step.apply(conn)
        stamp(conn, step.version, step.description)
    return pending
