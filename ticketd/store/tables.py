"""SQLAlchemy Core mapping of schema.sql (tests prove the two agree)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()


def _id() -> Column:
    return Column("id", Integer, primary_key=True, autoincrement=True)


schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", DateTime, nullable=False),
)

raw_mail = Table(
    "raw_mail",
    metadata,
    _id(),
    Column("received_at", DateTime, nullable=False),
    Column("source", String(16), nullable=False),
    Column("mailbox", String(512)),
    Column("envelope_from", String(998)),
    Column("envelope_to", Text),
    Column("message_id", String(998)),
    Column("dedupe_key", String(128), nullable=False, unique=True),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False, server_default="received"),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("processed_at", DateTime),
    Column("ticket_id", Integer),
    Column("dismissed_at", DateTime),
    Column("dismissed_by", String(320)),
    Column("dismiss_reason", Text),
)

imap_cursor = Table(
    "imap_cursor",
    metadata,
    Column("mailbox", String(512), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime, nullable=False),
    Column("owed", Text),
)

desk_secrets = Table(
    "desk_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

imap_health = Table(
    "imap_health",
    metadata,
    Column("mailbox", String(512), primary_key=True),
    Column("last_ok_at", DateTime),
    Column("error", Text),
    Column("failing_since", DateTime),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime, nullable=False),
    Column("oversized", Integer, nullable=False, server_default="0"),
    Column("oversized_largest", BigInteger),
    Column("set_aside", Text),
)

tickets = Table(
    "tickets",
    metadata,
    _id(),
    Column("subject", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("priority", String(16), nullable=False, server_default="normal"),
    Column("type", String(16)),
    Column("requester", String(320), nullable=False),
    Column("requester_name", String(320)),
    Column("assignee", String(320)),
    Column("group_name", String(128)),
    Column("source", Text),
    Column("scale", Text),
    Column("reproducible", Text),
    Column("postponed_until", DateTime),
    Column("dev_engineer", String(320)),
    Column("dev_tracker_key", String(128)),
    Column("dev_due", DateTime),
    Column("suppress_ack", Boolean, nullable=False, server_default="0"),
    Column("first_response_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("closed_at", DateTime),
    Column("merged_into", Integer, ForeignKey("tickets.id")),
)

ticket_tags = Table(
    "ticket_tags",
    metadata,
    Column("ticket_id", Integer, ForeignKey("tickets.id"), primary_key=True),
    Column("tag", String(64), primary_key=True),
)

participants = Table(
    "participants",
    metadata,
    _id(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", String(320)),
    Column("role", String(16), nullable=False),
    Column("bounced_at", DateTime),
    Column("created_at", DateTime, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    _id(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("raw_mail_id", Integer, ForeignKey("raw_mail.id")),
    Column("direction", String(3), nullable=False),
    Column("message_id", String(998)),
    Column("from_addr", String(320)),
    Column("from_name", String(320)),
    Column("to_addrs", Text),
    Column("cc_addrs", Text),
    Column("subject", Text),
    Column("text", Text, nullable=False),
    Column("full_text", Text, nullable=False),
    Column("html", Text),
    Column("internal", Boolean, nullable=False, server_default="0"),
    Column("auto_generated", Boolean, nullable=False, server_default="0"),
    Column("author_role", String(16), nullable=False),
    Column("matched_by", String(32)),
    Column("created_at", DateTime, nullable=False),
)

attachments = Table(
    "attachments",
    metadata,
    _id(),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content_id", String(998)),
    Column("inline", Boolean, nullable=False, server_default="0"),
)

events = Table(
    "events",
    metadata,
    _id(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("actor", String(320), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("from_value", Text),
    Column("to_value", Text),
    Column("reason", Text),
    Column("message_id", Integer, ForeignKey("messages.id")),
    Column("rules_hash", String(64)),
)

outbox = Table(
    "outbox",
    metadata,
    _id(),
    Column("ticket_id", Integer, ForeignKey("tickets.id")),
    Column("message_row_id", Integer, ForeignKey("messages.id")),
    Column("template", String(64), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("message_id", String(998), nullable=False, unique=True),
    Column("automatic", Boolean, nullable=False, server_default="1"),
    Column("raw", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claimed_at", DateTime),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("dismissed_at", DateTime),
    Column("dismissed_by", String(320)),
    Column("dismiss_reason", Text),
    Column("claimed_by", String(200)),
)

rr_cursor = Table(
    "rr_cursor",
    metadata,
    Column("group_name", String(128), primary_key=True),
    Column("last_agent", String(320)),
    Column("updated_at", DateTime, nullable=False),
)

timers = Table(
    "timers",
    metadata,
    _id(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("state", String(16), nullable=False, server_default="armed"),
    Column("fired_at", DateTime),
    Column("created_at", DateTime, nullable=False),
)

timer_rules = Table(
    "timer_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("rules_hash", String(64), nullable=False),
    Column("timing", Text, nullable=False),
    Column("planned_at", DateTime, nullable=False),
)

ratings = Table(
    "ratings",
    metadata,
    _id(),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("usefulness", Integer, nullable=False),
    Column("speed", Integer, nullable=False),
    Column("politeness", Integer, nullable=False),
    Column("message_id", Integer, ForeignKey("messages.id")),
    Column("created_at", DateTime, nullable=False),
)

reactions = Table(
    "reactions",
    metadata,
    _id(),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False),
    Column("reaction", String(16), nullable=False),
    Column("by_addr", String(320), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

agent_absences = Table(
    "agent_absences",
    metadata,
    Column("agent", String(320), primary_key=True),
    Column("since", DateTime, nullable=False),
    Column("until", DateTime),
)
