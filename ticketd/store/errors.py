"""The store's failures, named so shells can catch them without importing SQLAlchemy."""

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.exc import SQLAlchemyError as StoreError

# The database could not be reached or used: server stopped, refused login, no such database, a file
# that cannot be opened. (A bug in a statement is another SQLAlchemyError, and keeps its traceback.)
Unreachable = (OperationalError, InterfaceError)

__all__ = ["StoreError", "Unreachable", "database_of", "database_problem", "shown_url", "unreachable_message"]


def database_of(url: str) -> tuple[str, str | None] | None:
    """(driver name, database) of a database URL, as SQLAlchemy reads it; None when it reads no URL there."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    return parsed.drivername, parsed.database


def shown_url(url: str) -> str:
    """A database URL with its password hidden, for messages; as given when it is no URL at all."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def unreachable_message(url: str | None, exc: BaseException) -> str:
    """`cannot use the database URL (password hidden): what the server or driver said`, on one line."""
    where = shown_url(url) if url else "of the settings"
    said = getattr(exc, "orig", None) or exc
    return f"cannot use the database {where}: {' '.join(str(said).split())}"


def database_problem(url: str | None, exc: BaseException) -> str:
    """The one line for an Unreachable error: `the database is locked: ...` (who holds it), else
    `unreachable_message`'s."""
    from ticketd.store.locks import is_lock_wait, locked_message

    if url and is_lock_wait(exc):
        return locked_message(url, exc)
    return unreachable_message(url, exc)
