"""Which numbers can name a row: ticket numbers, and the ids of quarantined and outgoing mail."""

from __future__ import annotations

# schema.sql declares the columns that refer to an id INTEGER, 32-bit on
# PostgreSQL (SQLite's are 64-bit; one schema serves both): a larger number
# names no row on either, and PostgreSQL refuses to compare an INTEGER column
# with it ("integer out of range") rather than find nothing.
MAX_ID = 2**31 - 1


def possible_id(number: int) -> bool:
    """Whether `number` could be a row's id at all (1 to MAX_ID)."""
    return 1 <= number <= MAX_ID
