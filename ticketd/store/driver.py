"""Hot statements run straight on the DB-API cursor: SQL compiled once per dialect, no per-execution Core work.

Processing executes about ten statements a mail while it holds SQLite's one
write lock (bench/README.md, "Where the time goes now"). Through
`Connection.execute` each one pays SQLAlchemy's execution context: the
compiled-cache key, `construct_params`, the expansion of an `IN` list, the
result's metadata; a statement costs about ten times what the driver takes
for it. A `Hot` statement is still written with SQLAlchemy Core (one
spelling for both databases), compiled by SQLAlchemy once per dialect and
set of parameter names (and per length of each `IN` list), and then only the
parameters are bound: the same SQL text, the same bind and result type
processing (SQLite's DATETIME as text, say), the same errors wrapped as
SQLAlchemy wraps them (`is_transient`, `out_of_resources` and `unreachable`
see no difference), and `before_cursor_execute`/`after_cursor_execute`
listeners still see every statement (the statement counts of
tests/test_statements_per_mail.py).

It leans on attributes of SQLAlchemy's compiled statement that are not
public API; the version is pinned (pyproject.toml), and
tests/test_store_driver_statements.py holds every hot statement equal to
`Connection.execute` on both databases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, exc
from sqlalchemy.sql import ClauseElement

# Expanded forms kept per statement and parameter names: one per length of its IN lists, which stay short
# on the hot path (a batch's raw ids, a reply's Message-IDs, a recipient's spellings).
_MAX_EXPANDED = 256


class _Form:
    """One compiled form of a statement: SQL text and how each parameter is bound, for one dialect."""

    __slots__ = ("compiled", "dialect", "sql", "positional", "slots", "expanding", "expanded", "result", "keys",
                 "result_processors")

    def __init__(self, statement: ClauseElement, conn: Connection, keys: Sequence[str] | None, many: bool) -> None:
        self.dialect = conn.dialect
        # For executemany as SQLAlchemy compiles it: on PostgreSQL a single INSERT returns its primary key
        # (implicit RETURNING), which an executemany leaves out.
        self.compiled = compiled = statement.compile(dialect=conn.dialect, column_keys=keys, for_executemany=many)
        if compiled.literal_execute_params or compiled.escaped_bind_names or compiled.insert_prefetch \
                or compiled.update_prefetch:
            raise ValueError("statement needs SQLAlchemy's execution context: run it through Connection.execute")
        self.positional = compiled.positional
        self.sql = compiled.string
        # bind name -> (the parameter key that supplies it, its value when none does, whether one must)
        self.slots = {name: (bind.key, bind, bind.required) for bind, name in compiled.bind_names.items()}
        self.expanding = tuple(compiled.bind_names[bind] for bind in compiled.post_compile_params)
        self.expanded: dict[tuple[int, ...], tuple[str, Sequence[str] | None, Mapping[str, Any]]] = {}
        self.result = [entry[3] for entry in compiled._result_columns]
        self.keys = tuple(entry[0] for entry in compiled._result_columns)
        self.result_processors: list | None = None

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every bind's value, as `SQLCompiler.construct_params` gives it."""
        values = {}
        for name, (key, bind, required) in self.slots.items():
            if key in params:
                values[name] = params[key]
            elif name in params:
                values[name] = params[name]
            elif required:
                raise exc.InvalidRequestError(f"A value is required for bind parameter {key!r}")
            else:
                values[name] = bind.effective_value
        return values

    def statement_for(self, values: dict[str, Any]) -> tuple[str, Sequence[str] | None, Mapping[str, Any]] | None:
        """SQL text, bind order (positional drivers) and bind processors for these values; None for an empty IN."""
        compiled = self.compiled
        if not self.expanding:
            return self.sql, compiled.positiontup if self.positional else None, compiled._bind_processors
        lengths = tuple(len(values[name]) for name in self.expanding)
        if 0 in lengths:
            return None   # SQLAlchemy's empty-set expression: left to Connection.execute
        found = self.expanded.get(lengths)
        if found is None:
            state = compiled._process_parameters_for_postcompile(dict(values))
            processors = dict(compiled._bind_processors)
            processors.update(state.processors)
            found = (state.statement, state.positiontup if self.positional else None, processors)
            if len(self.expanded) < _MAX_EXPANDED:
                self.expanded[lengths] = found
        return found

    def bound(self, values: dict[str, Any], order: Sequence[str] | None, processors: Mapping[str, Any]):
        """The driver's parameters: a tuple in bind order (qmark) or a dict by name (pyformat)."""
        for name in self.expanding:
            for i, item in enumerate(values.pop(name), 1):
                values[f"{name}_{i}"] = item
        for name, process in processors.items():
            if name in values:
                values[name] = process(values[name])
        if order is None:
            return values
        return tuple(values[name] for name in order)

    def rows(self, cursor) -> list[tuple]:
        """The cursor's rows with SQLAlchemy's result processing (SQLite's DATETIME text to datetime, say)."""
        fetched = cursor.fetchall()
        if self.result_processors is None:
            described = cursor.description or ()
            self.result_processors = [
                type_._cached_result_processor(self.dialect, described[i][1] if i < len(described) else None)
                for i, type_ in enumerate(self.result)]
        processors = self.result_processors
        if not any(processors):
            return [tuple(row) for row in fetched]
        return [tuple(value if p is None or value is None else p(value) for p, value in zip(processors, row))
                for row in fetched]


class Ran:
    """What a hot statement gave: its rows (tuples), their column names, and the rowcount."""

    __slots__ = ("rows", "keys", "rowcount")

    def __init__(self, rows: list[tuple], keys: tuple[str, ...], rowcount: int) -> None:
        self.rows, self.keys, self.rowcount = rows, keys, rowcount

    def scalar(self) -> Any:
        """The first column of the first row; None without a row."""
        return self.rows[0][0] if self.rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]

    def first(self) -> dict | None:
        """The first row as a dict by column name; None without a row."""
        return dict(zip(self.keys, self.rows[0])) if self.rows else None

    def mappings(self) -> list[dict]:
        return [dict(zip(self.keys, row)) for row in self.rows]


class Hot:
    """A Core statement executed on the DB-API cursor, compiled once per dialect and parameter names."""

    __slots__ = ("statement", "_forms")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._forms: dict[tuple, _Form] = {}

    def _form(self, conn: Connection, keys: tuple[str, ...], many: bool = False) -> _Form:
        dialect = conn.dialect
        key = (dialect.name, dialect.server_version_info, keys, many)
        form = self._forms.get(key)
        if form is None:
            form = self._forms[key] = _Form(self.statement, conn, list(keys), many)
        return form

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Ran:
        """Run once with `params` (keys as Connection.execute takes them) in the connection's transaction."""
        form = self._form(conn, tuple(params))
        values = form.values(params)
        found = form.statement_for(values)
        if found is None:
            result = conn.execute(self.statement, dict(params))
            rows = [tuple(r) for r in result.all()] if result.returns_rows else []
            return Ran(rows, tuple(result.keys()) if result.returns_rows else (), result.rowcount)
        sql, order, processors = found
        return _run(conn, form, sql, form.bound(values, order, processors), many=False)

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row of parameters, in one executemany (no IN lists, no RETURNING)."""
        if not rows:
            return
        form = self._form(conn, tuple(rows[0]), many=True)
        if form.expanding or form.result:
            raise ValueError("executemany takes a statement without IN lists or RETURNING")
        order = form.compiled.positiontup if form.positional else None
        processors = form.compiled._bind_processors
        bound = [form.bound(form.values(row), order, processors) for row in rows]
        # One row goes as one execute: psycopg runs an executemany in pipeline mode, which costs more than
        # the statement for a single row (a new ticket's one event, its one timer).
        _run(conn, form, form.sql, bound if len(bound) > 1 else bound[0], many=len(bound) > 1)


def _run(conn: Connection, form: _Form, sql: str, parameters, *, many: bool) -> Ran:
    """Execute on a new cursor of the connection's transaction, as Connection.execute would; the rows fetched."""
    transaction = conn.get_transaction()
    if transaction is None:
        conn._autobegin()   # as Connection.execute does: a read on SQLite begins there (ticketd.store.db)
    elif not transaction.is_active or ((nested := conn.get_nested_transaction()) is not None
                                       and not nested.is_active):
        raise exc.PendingRollbackError("this transaction is inactive; roll it back first")
    listened = conn._has_events or conn.engine._has_events
    cursor = None
    try:
        cursor = conn.connection.dbapi_connection.cursor()
        if listened:
            for listener in conn.dispatch.before_cursor_execute:
                sql, parameters = listener(conn, cursor, sql, parameters, None, many) or (sql, parameters)
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        if listened:
            conn.dispatch.after_cursor_execute(conn, cursor, sql, parameters, None, many)
        rows = form.rows(cursor) if form.result else []
        rowcount = cursor.rowcount
        cursor.close()
    except BaseException as error:
        conn._handle_dbapi_exception(error, sql, parameters, cursor, None)
    return Ran(rows, form.keys, rowcount)
