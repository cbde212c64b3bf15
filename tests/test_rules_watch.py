"""The rules watcher never applies an empty or half-written rules.yaml: the rules in force stay."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from tests.test_assignment import THREE
from ticketd.assignment import assign
from ticketd.clock import utcnow
from ticketd.rules_watch import RulesWatcher, reload
from ticketd.store import tickets as store
from ticketd.store.tables import events, outbox


def _assigned_tickets(app, n: int) -> list[int]:
    """n new tickets in support, each assigned by round robin (a1, a2, a3, ...)."""
    now = utcnow()
    with app.engine.begin() as conn:
        ids = [store.create_ticket(conn, subject=f"t{i}", status="new", requester=f"c{i}@example.org",
                                   group_name="support", created_at=now, updated_at=now) for i in range(n)]
    for ticket_id in ids:
        assign(app, ticket_id)
    return ids


def _counts(app) -> tuple[int, int]:
    """(unassigned events, outbox rows): what a wrongly applied reload would add."""
    with app.engine.connect() as conn:
        unassigned = conn.execute(select(func.count()).select_from(events)
                                  .where(events.c.kind == "unassigned")).scalar_one()
        return unassigned, conn.execute(select(func.count()).select_from(outbox)).scalar_one()


def test_a_truncated_rules_file_is_not_applied_and_keeps_every_assignment(make_app, sqlite_url, tmp_path, caplog):
    app = make_app(sqlite_url, rules=THREE)
    ids = _assigned_tickets(app, 3)
    before, counts = app.rules, _counts(app)
    for empty in (b"", b"\n  \n", b"# being rewritten\n"):
        (tmp_path / "rules.yaml").write_bytes(empty)   # `: > rules.yaml`, or an editor mid-save
        assert reload(app) is False
        assert app.rules is before
    watcher = RulesWatcher(app, interval=60, settle=0.05)
    watcher._poll()   # the watcher's path as well as SIGHUP's
    assert app.rules is before
    assert _counts(app) == counts   # no "no longer an agent", no second "assigned" mail
    with app.engine.connect() as conn:
        assert [store.get_ticket(conn, i)["assignee"] for i in ids] == [
            "a1@example.com", "a2@example.com", "a3@example.com"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("NOT applied" in e for e in errors)
    assert any("the file is empty; a rules file needs at least `agents:`" in e for e in errors)


def test_a_file_still_being_written_is_loaded_only_once_it_is_complete(make_app, sqlite_url, tmp_path):
    app = make_app(sqlite_url, rules=THREE)
    ids = _assigned_tickets(app, 3)
    counts = _counts(app)
    path = tmp_path / "rules.yaml"
    # The new file adds a4; its first half is valid YAML that has lost a2 and a3.
    new = THREE.replace("groups:\n", "  - {email: a4@example.com, name: A4, groups: [support]}\ngroups:\n")
    cut = new.index("  - {email: a2")
    path.write_text(new[:cut])

    def finish_writing():
        time.sleep(0.15)
        with path.open("a") as f:
            f.write(new[cut:])

    writer = threading.Thread(target=finish_writing)
    writer.start()
    watcher = RulesWatcher(app, interval=60, settle=0.5)
    watcher._poll()   # sees the half file change under it: loads nothing
    writer.join()
    assert [a.email for a in app.rules.agents] == ["a1@example.com", "a2@example.com", "a3@example.com"]
    watcher._poll()   # complete and still: loaded
    assert [a.email for a in app.rules.agents] == [
        "a1@example.com", "a2@example.com", "a3@example.com", "a4@example.com"]
    assert _counts(app) == counts   # nobody was ever released
    with app.engine.connect() as conn:
        assert [store.get_ticket(conn, i)["assignee"] for i in ids] == [
            "a1@example.com", "a2@example.com", "a3@example.com"]


def test_a_finished_change_is_still_applied_at_the_next_poll(make_app, sqlite_url, tmp_path):
    app = make_app(sqlite_url, rules=THREE)
    (tmp_path / "rules.yaml").write_text(THREE.replace("A3, groups: [support]}", "A3, groups: [support], away: true}"))
    watcher = RulesWatcher(app, interval=60, settle=0.05)
    started = time.monotonic()
    watcher._poll()
    assert app.rules.agent("a3@example.com").away is True
    assert time.monotonic() - started < 1.0


def test_a_file_without_agents_is_not_applied_over_one_with_agents(make_app, sqlite_url, tmp_path, caplog):
    """Valid YAML with its `agents:` block cut out would unassign every open ticket at once."""
    app = make_app(sqlite_url, rules=THREE)
    ids = _assigned_tickets(app, 3)
    before, counts = app.rules, _counts(app)
    headless = "groups:\n  support: {assign: round_robin}\nroutes:\n  - then: {group: support}\n"
    (tmp_path / "rules.yaml").write_text(headless)
    assert reload(app) is False
    assert app.rules is before and _counts(app) == counts
    with app.engine.connect() as conn:
        assert all(store.get_ticket(conn, i)["assignee"] for i in ids)
    assert any("NOT applied: it names no agents" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    (tmp_path / "rules.yaml").write_text(THREE.replace("a3@example.com", "a4@example.com"))
    assert reload(app) is True   # a file with agents still applies


def test_a_deleted_rules_file_is_logged_once_without_waiting_for_sighup(make_app, sqlite_url, tmp_path, caplog):
    """Editing it is noticed at once; its deletion was said only on the next SIGHUP. Its return is loaded."""
    app = make_app(sqlite_url, rules=THREE)
    before = app.rules
    watcher = RulesWatcher(app, interval=60, settle=0.05)
    watcher._poll()
    (tmp_path / "rules.yaml").unlink()
    for _ in range(3):
        watcher._poll()
    gone = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and "is gone" in r.getMessage()]
    assert len(gone) == 1 and "(deleted or moved); keeping rules" in gone[0] and before.digest[:12] in gone[0]
    assert app.rules is before
    (tmp_path / "rules.yaml").write_text(THREE.replace("A3, groups: [support]}", "A3, groups: [support], away: true}"))
    watcher._poll()
    assert app.rules.agent("a3@example.com").away is True
