"""Pure modules import no I/O library, and only ticketd/store imports SQLAlchemy (STYLE.md, "One house")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = sorted([*(ROOT / "ticketd" / "domain").glob("*.py"),
               ROOT / "ingest" / "parse.py", ROOT / "ingest" / "charsets.py", ROOT / "ingest" / "headers.py",
               ROOT / "ingest" / "match.py", ROOT / "ingest" / "quotes.py", ROOT / "ingest" / "html_text.py",
               ROOT / "ingest" / "identity.py", ROOT / "ingest" / "tnef.py", ROOT / "ingest" / "mentions.py",
               ROOT / "ingest" / "smime.py", ROOT / "ingest" / "boundaries.py",
               ROOT / "outbound" / "dsn.py", ROOT / "outbound" / "plain_bounce.py"])
IO_LIBRARIES = {"sqlalchemy", "psycopg", "sqlite3", "smtplib", "imaplib", "imapclient", "aiosmtpd", "socket",
                "redis", "dramatiq", "subprocess", "requests", "urllib", "http", "asyncio", "threading",
                "ticketd.store", "ticketd.app", "outbound.outbox", "outbound.delivery", "outbound.send"}


def _imports(path: Path, *, with_typing_only: bool = True) -> set[str]:
    """Modules `path` imports; with_typing_only=False leaves out those under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if not with_typing_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports_no_io(path):
    bad = {name for name in _imports(path)
           if any(name == lib or name.startswith(lib + ".") for lib in IO_LIBRARIES)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: keep I/O in the shell"


SHELLS = ("ticketd", "outbound", "ingest", "workers")


def _uses_sqlalchemy(path: Path) -> bool:
    return any(n == "sqlalchemy" or n.startswith("sqlalchemy.") for n in _imports(path, with_typing_only=False))


def test_only_the_store_imports_sqlalchemy():
    shell = [p for top in SHELLS for p in (ROOT / top).rglob("*.py")
             if (ROOT / "ticketd" / "store") not in p.parents]
    offenders = {str(p.relative_to(ROOT)) for p in shell if _uses_sqlalchemy(p)}
    # Shell modules that run their own statements are listed here knowingly;
    # a new one should go through ticketd/store instead. Type hints alone
    # (under `if TYPE_CHECKING:`) run no statement and are allowed.
    assert offenders <= KNOWN_SQL_SHELLS, sorted(offenders - KNOWN_SQL_SHELLS)


def test_the_sqlalchemy_check_sees_runtime_imports_and_skips_typing_only_ones(tmp_path):
    runtime = tmp_path / "runtime.py"
    runtime.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\nfrom sqlalchemy import select\n")
    typing_only = tmp_path / "typing_only.py"
    typing_only.write_text("import typing\nif typing.TYPE_CHECKING:\n    from sqlalchemy import Engine\n")
    assert _uses_sqlalchemy(runtime)
    assert not _uses_sqlalchemy(typing_only)


KNOWN_SQL_SHELLS: set[str] = set()
