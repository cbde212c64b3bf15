"""The store's failures, named so shells can catch them without importing SQLAlchemy."""

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import SQLAlchemyError as StoreError

# The database could not be reached or used: server stopped, refused login, no such database, a file
# that cannot be opened. (A bug in a statement is another SQLAlchemyError, and keeps its traceback.)
Unreachable = (OperationalError, InterfaceError)

__all__ = ["StoreError", "Unreachable", "unreachable_message"]


def unreachable_message(url: str | None, exc: BaseException) -> str:
    """`cannot use the database URL (password hidden): what the server or driver said`, on one line."""
    where = make_url(url).render_as_string(hide_password=True) if url else "of the settings"
    said = getattr(exc, "orig", None) or exc
    return f"cannot use the database {where}: {' '.join(str(said).split())}"
