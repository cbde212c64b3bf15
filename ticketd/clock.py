"""The one place that reads the wall clock (naive UTC, as the schema stores it)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC for JSON output."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"
