"""Which rows name a stored file is answered through an index, not by reading the whole attachments table."""

from __future__ import annotations

from sqlalchemy import select

from ticketd.store.erase import referenced_files
from ticketd.store.tables import attachments


def test_the_question_which_rows_name_a_file_uses_the_attachments_sha256_index(make_app, sqlite_url):
    app = make_app(sqlite_url)
    names = {"a" * 64, "b" * 64}
    statement = select(attachments.c.sha256).where(attachments.c.sha256.in_(sorted(names))).distinct()
    with app.engine.connect() as conn:
        compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
        assert "attachments_sha256" in plan, plan   # SQLite's plan names the index it searches
        assert referenced_files(conn, names) == set()
