"""The only importer of SQLAlchemy: tables, transactions, queries."""
