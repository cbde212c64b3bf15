"""The store's failures, named so shells can catch them without importing SQLAlchemy."""

from sqlalchemy.exc import SQLAlchemyError as StoreError

__all__ = ["StoreError"]
