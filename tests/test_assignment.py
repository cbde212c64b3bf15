"""Round robin and least open in the database: fairness under concurrency, skipping, waiting, #assign."""

from __future__ import annotations

import email
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import select

from ingest.match import reply_address
from ingest.parse import dedupe_key
from tests.conftest import ROOT
from tests.conftest import THREE_AGENTS as THREE
from tests.desk import body_text, build_mail, open_desk
from tests.waiting import eventually
from ticketd.assignment import ASSIGN_BATCH, assign, assign_batch, assign_in_tx, release_departed, sweep_unassigned
from ticketd.clock import utcnow
from ticketd.domain.assignment import next_agent
from ticketd.domain.rules import Agent
from ticketd.domain.statuses import Status
from ticketd.pipeline import drain
from ticketd.rules_watch import RulesWatcher, reload
from ticketd.store import tickets as store
from ticketd.store.absences import set_absence
from ticketd.store.assignment import open_counts
from ticketd.store.inbox import store_raw
from ticketd.store.tables import events, outbox, tickets
from ticketd.timers import armed


def _tickets(app, n: int, group: str = "support") -> list[int]:
    now = utcnow()
    with app.engine.begin() as conn:
        return [store.create_ticket(conn, subject=f"t{i}", status="new", requester=f"c{i}@example.org",
                                    group_name=group, created_at=now, updated_at=now) for i in range(n)]


def _assignees(app) -> Counter:
    with app.engine.connect() as conn:
        return Counter(conn.execute(select(tickets.c.assignee)).scalars())


# ---------------------------------------------------------------- pure


def test_next_agent_round_robin_skips_away_and_full():
    members = [Agent("a@x.io", "A"), Agent("b@x.io", "B", away=True), Agent("c@x.io", "C", max_open=2),
               Agent("d@x.io", "D")]
    assert next_agent("round_robin", members, None, {}).email == "a@x.io"
    assert next_agent("round_robin", members, "a@x.io", {}).email == "c@x.io"
    assert next_agent("round_robin", members, "a@x.io", {"c@x.io": 2}).email == "d@x.io"
    assert next_agent("round_robin", members, "d@x.io", {}).email == "a@x.io"
    assert next_agent("round_robin", members, "gone@x.io", {}).email == "a@x.io"
    assert next_agent("round_robin", members, "a@x.io", {}, exclude={"c@x.io", "d@x.io"}).email == "a@x.io"
    assert next_agent("round_robin", [members[1]], None, {}) is None


def test_next_agent_least_open_ties_rotate():
    members = [Agent("a@x.io", "A"), Agent("b@x.io", "B"), Agent("c@x.io", "C")]
    assert next_agent("least_open", members, None, {"a@x.io": 3, "b@x.io": 1, "c@x.io": 2}).email == "b@x.io"
    assert next_agent("least_open", members, "a@x.io", {}).email == "b@x.io"
    assert next_agent("least_open", members, "b@x.io", {}).email == "c@x.io"


# ---------------------------------------------------------------- fairness on PostgreSQL


def test_round_robin_300_tickets_8_threads_is_exactly_100_each(make_app, postgres_url):
    app = make_app(postgres_url, rules=THREE)
    ids = _tickets(app, 300)
    todo = list(ids)
    lock = threading.Lock()
    failures = []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                ticket_id = todo.pop()
            try:
                assign(app, ticket_id)
            except Exception as exc:  # a failure must fail the test, not vanish in a thread
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert _assignees(app) == {"a1@example.com": 100, "a2@example.com": 100, "a3@example.com": 100}
    with app.engine.connect() as conn:
        assigned = conn.execute(select(events).where(events.c.kind == "assigned")).mappings().all()
        assert len(assigned) == 300 and {e["rules_hash"] for e in assigned} == {app.rules.digest}
        assert conn.execute(select(outbox.c.template).distinct()).scalars().all() == ["agent/ticket_assigned"]


WORKER = """
import sys
from ticketd.app import build_app
from ticketd.assignment import assign
from ticketd.settings import load_settings
app = build_app(load_settings(sys.argv[1], environ={{}}), create_schema=False)
ids = [int(x) for x in sys.argv[2].split(",")]
import threading
def run(part):
    for i in part:
        assign(app, i)
ts = [threading.Thread(target=run, args=(ids[k::3],)) for k in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
"""


def test_round_robin_300_tickets_4_processes_is_exactly_100_each(make_app, postgres_url, tmp_path):
    app = make_app(postgres_url, rules=THREE)
    ids = _tickets(app, 300)
    config = tmp_path / "ticketd.yaml"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER.format(), str(config),
                               ",".join(map(str, ids[k::4]))], cwd=ROOT) for k in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    assert _assignees(app) == {"a1@example.com": 100, "a2@example.com": 100, "a3@example.com": 100}


def test_assign_twice_is_harmless(make_app, db_url):
    app = make_app(db_url, rules=THREE)
    [ticket_id] = _tickets(app, 1)
    assert assign(app, ticket_id) == "a1@example.com"
    assert assign(app, ticket_id) is None   # dramatiq redelivery
    assert _assignees(app) == {"a1@example.com": 1}


# ---------------------------------------------------------------- batches


TWO_GROUPS = THREE.replace(
    "name: A3, groups: [support]", "name: A3, groups: [support, sales]").replace(
    "support: {assign: round_robin}", "support: {assign: round_robin}\n  sales: {assign: round_robin}")


def test_a_job_assigns_the_groups_unassigned_tickets_behind_its_own(make_app, db_url):
    app = make_app(db_url, rules=TWO_GROUPS)
    older = _tickets(app, 1)
    support = _tickets(app, ASSIGN_BATCH + 3)
    sales = _tickets(app, 2, group="sales")
    with app.engine.begin() as conn:
        store.update_ticket(conn, support[1], utcnow(), status="closed")
    given = assign_batch(app, support[0])
    # its own first, then the open ones behind it in id order, one batch's worth;
    # not the older ticket, not the closed one, not another group's
    taken = [support[0], *support[2:ASSIGN_BATCH + 1]]
    assert list(given) == taken
    rotation = ["a1@example.com", "a2@example.com", "a3@example.com"]
    assert list(given.values()) == [rotation[k % 3] for k in range(ASSIGN_BATCH)]
    assert all(assign(app, t) is None for t in taken)   # their own jobs find them assigned
    assert assign(app, support[1]) is None               # closed
    with app.engine.connect() as conn:
        assert conn.execute(select(events.c.ticket_id).where(events.c.kind == "assigned")
                            ).scalars().all() == taken
        mailed = conn.execute(select(outbox.c.ticket_id, outbox.c.recipient).order_by(outbox.c.id)).all()
        assert mailed == list(given.items())
        for t in [*older, support[-2], support[-1], *sales]:
            assert store.get_ticket(conn, t)["assignee"] is None
    # the cursor stands where the batch left it: the next ticket continues the rotation
    assert assign(app, support[-2]) == rotation[ASSIGN_BATCH % 3]
    assert assign_batch(app, sales[0]) == {sales[0]: "a3@example.com", sales[1]: "a3@example.com"}
    assert assign(app, older[0]) == rotation[(ASSIGN_BATCH + 2) % 3]


def test_a_batch_stops_when_nobody_is_left(make_app, db_url):
    rules = THREE.replace("name: A1, groups", "name: A1, max_open: 1, groups").replace(
        "name: A2, groups", "name: A2, away: true, groups").replace(
        "name: A3, groups", "name: A3, max_open: 2, groups")
    app = make_app(db_url, rules=rules)
    ids = _tickets(app, 5)
    assert assign_batch(app, ids[0]) == {ids[0]: "a1@example.com", ids[1]: "a3@example.com",
                                         ids[2]: "a3@example.com"}
    assert assign(app, ids[3]) is None
    with app.engine.connect() as conn:
        waiting = conn.execute(select(events.c.ticket_id).where(events.c.kind == "assignment_waiting")
                               ).scalars().all()
    assert waiting == [ids[3]]   # recorded by its own job; ids[4] waits for its own


def test_the_sweep_counts_every_ticket_a_batch_assigned(make_app, db_url):
    app = make_app(db_url, rules=THREE)
    _tickets(app, 4)   # as if their jobs were lost
    assert sweep_unassigned(app, grace_seconds=0) == 4
    assert _assignees(app) == {"a1@example.com": 2, "a2@example.com": 1, "a3@example.com": 1}
    assert sweep_unassigned(app, grace_seconds=0) == 0


def test_a_batch_skips_a_ticket_another_transaction_holds(make_app, postgres_url):
    app = make_app(postgres_url, rules=THREE)
    ids = _tickets(app, 3)
    with app.engine.connect() as holder:
        holder.begin()
        store.lock_ticket(holder, ids[1])   # e.g. a reply's processing holds it
        done = {}
        job = threading.Thread(target=lambda: done.update(assign_batch(app, ids[0])))
        job.start()
        job.join(10)
        assert not job.is_alive(), "the batch waited for a ticket another transaction holds"
        holder.rollback()
    assert done == {ids[0]: "a1@example.com", ids[2]: "a2@example.com"}
    assert assign(app, ids[1]) == "a3@example.com"


# ---------------------------------------------------------------- skipping and waiting


def test_away_and_max_open_are_skipped(make_app, db_url):
    rules = THREE.replace("name: A1, groups", "name: A1, away: true, groups").replace(
        "name: A2, groups", "name: A2, max_open: 2, groups")
    app = make_app(db_url, rules=rules)
    for ticket_id in _tickets(app, 6):
        assign(app, ticket_id)
    assert _assignees(app) == {"a2@example.com": 2, "a3@example.com": 4}


def test_least_open_balances_by_open_tickets(make_app, db_url):
    app = make_app(db_url, rules=THREE.replace("round_robin", "least_open"))
    first = _tickets(app, 3)
    with app.engine.begin() as conn:   # a1 already carries two open tickets
        for ticket_id in first[:2]:
            store.update_ticket(conn, ticket_id, utcnow(), assignee="a1@example.com")
        store.update_ticket(conn, first[2], utcnow(), assignee="a1@example.com", status="closed")
    for ticket_id in _tickets(app, 4):
        assign(app, ticket_id)
    # a1 (2 open) gets none; the others alternate as their loads tie
    assert _assignees(app) == {"a1@example.com": 3, "a2@example.com": 2, "a3@example.com": 2}


def test_open_counts_are_of_the_named_agents_and_every_status_but_closed(make_app, db_url):
    app = make_app(db_url, rules=THREE)
    ids = _tickets(app, len(Status) + 2)
    with app.engine.begin() as conn:
        for ticket_id, status in zip(ids, list(Status), strict=False):
            store.update_ticket(conn, ticket_id, utcnow(), assignee="a1@example.com", status=status.value)
        store.update_ticket(conn, ids[-2], utcnow(), assignee="a2@example.com")
        store.update_ticket(conn, ids[-1], utcnow(), assignee="a3@example.com")
        counts = open_counts(conn, ["a1@example.com", "a2@example.com", "nobody@example.com"])
    assert counts == {"a1@example.com": len(Status) - 1, "a2@example.com": 1}


def test_nobody_available_waits_then_reload_assigns(make_app, db_url, tmp_path):
    away = THREE.replace("groups: [support]}", "groups: [support], away: true}")
    app = make_app(db_url, rules=away)
    [ticket_id] = _tickets(app, 1)
    assert assign(app, ticket_id) is None
    assert assign(app, ticket_id) is None
    assert sweep_unassigned(app, grace_seconds=0) == 0
    with app.engine.connect() as conn:
        kinds = conn.execute(select(events.c.kind).where(events.c.ticket_id == ticket_id)).scalars().all()
    assert kinds == ["assignment_waiting"]   # once, however often it is retried

    (tmp_path / "rules.yaml").write_text(away.replace("A2, groups: [support], away: true", "A2, groups: [support], away: false"))
    assert reload(app) is True
    with app.engine.connect() as conn:
        ticket = store.get_ticket(conn, ticket_id)
        assigned = conn.execute(select(events).where(events.c.kind == "assigned")).mappings().one()
    assert ticket["assignee"] == "a2@example.com"
    assert assigned["rules_hash"] == app.rules.digest


def test_an_agent_removed_from_the_rules_leaves_their_open_tickets_to_the_group(make_app, db_url, tmp_path):
    app = make_app(db_url, rules=THREE)
    ids = _tickets(app, 4)
    for ticket_id in ids:
        assign(app, ticket_id)                        # a1, a2, a3, a1
    with app.engine.begin() as conn:
        store.update_ticket(conn, ids[3], utcnow(), status=Status.CLOSED.value)
    (tmp_path / "rules.yaml").write_text(THREE.replace("  - {email: a1@example.com, name: A1, groups: [support]}\n", ""))
    assert reload(app) is True

    with app.engine.connect() as conn:
        assignees = {t: store.get_ticket(conn, t)["assignee"] for t in ids}
        released = conn.execute(select(events).where(events.c.ticket_id == ids[0])
                                .order_by(events.c.id)).mappings().all()
        notice = conn.execute(select(outbox).where(outbox.c.ticket_id == ids[0])
                              .order_by(outbox.c.id.desc())).mappings().first()
    # The open ticket goes round robin after a3 (the group's last): to a2;
    # the closed one keeps its history; the others are untouched.
    assert assignees == {ids[0]: "a2@example.com", ids[1]: "a2@example.com", ids[2]: "a3@example.com",
                         ids[3]: "a1@example.com"}
    unassigned, given = released[-2:]
    assert (unassigned["kind"], unassigned["from_value"]) == ("unassigned", "a1@example.com")
    assert "a1@example.com is no longer an agent in rules.yaml" in unassigned["reason"]
    assert (given["kind"], given["from_value"], given["to_value"]) == ("assigned", None, "a2@example.com")
    assert (notice["recipient"], notice["template"]) == ("a2@example.com", "agent/ticket_assigned")
    assert release_departed(app) == 0                 # nothing left to release


def test_removed_agents_tickets_wait_when_nobody_is_available(make_app, db_url, tmp_path):
    app = make_app(db_url, rules=THREE)
    [ticket_id] = _tickets(app, 1)
    assign(app, ticket_id)
    alone = THREE.replace("  - {email: a1@example.com, name: A1, groups: [support]}\n", "").replace(
        "groups: [support]}", "groups: [support], away: true}")
    (tmp_path / "rules.yaml").write_text(alone)
    assert reload(app) is True
    with app.engine.connect() as conn:
        assert store.get_ticket(conn, ticket_id)["assignee"] is None
        kinds = conn.execute(select(events.c.kind).where(events.c.ticket_id == ticket_id)
                             .order_by(events.c.id)).scalars().all()
    assert kinds[-2:] == ["unassigned", "assignment_waiting"]
    # a2 back from holiday: the reload's sweep assigns it
    (tmp_path / "rules.yaml").write_text(alone.replace("A2, groups: [support], away: true", "A2, groups: [support]"))
    assert reload(app) is True
    with app.engine.connect() as conn:
        assert store.get_ticket(conn, ticket_id)["assignee"] == "a2@example.com"


def test_the_back_office_releases_at_start_what_a_rules_edit_made_while_stopped(make_app, db_url):
    app = make_app(db_url, rules=THREE)
    [ticket_id] = _tickets(app, 1)
    assign(app, ticket_id)                            # a1
    restarted = make_app(db_url, rules=THREE.replace("  - {email: a1@example.com, name: A1, groups: [support]}\n", ""))
    watcher = RulesWatcher(restarted, interval=60)
    watcher.start()
    try:
        def reassigned():
            with restarted.engine.connect() as conn:
                return store.get_ticket(conn, ticket_id)["assignee"] == "a2@example.com"
        assert eventually(reassigned)
    finally:
        watcher.stop()


def test_a_closed_ticket_of_a_removed_agent_reopens_to_the_group_not_to_them(make_app, db_url, tmp_path):
    """docs/rules.md: a former agent keeps no tickets, a closed one a customer reopens included; its
    replies reach the team, and the group's next agent gets it at once, as a new ticket."""
    customer = "cust@example.org"
    timed = THREE + "timers:\n  open: {respond_within: 1d, on_breach: reassign}\n"
    desk_gen = open_desk(make_app, db_url, rules=timed)
    desk = next(desk_gen)
    try:
        desk.send(build_mail(customer, "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        assert desk.assign(tid) == "a1@example.com"
        desk.reply_to(desk.last("a1@example.com"), "a1@example.com", "#close\nReplaced the fuser.\n")
        (tmp_path / "rules.yaml").write_text(timed.replace(
            "  - {email: a1@example.com, name: A1, groups: [support]}\n", ""))
        assert reload(desk.app) is True
        assert desk.ticket(tid)["assignee"] == "a1@example.com"   # closed: its history keeps who closed it
        mailed_to_a1 = len(desk.inbox("a1@example.com"))
        closing = desk.last(customer)

        desk.reply_to(closing, customer, "Thanks!\n")              # stays closed: told to nobody
        assert desk.ticket(tid)["status"] == "closed"

        jobs: list[tuple] = []
        desk.app.enqueue = lambda name, args: jobs.append((name, args))
        desk.reply_to(closing, customer, "It is burning again this morning.\n")
        ticket = desk.ticket(tid)
        assert (ticket["status"], ticket["assignee"]) == ("open", None)
        [unassigned] = desk.events(tid, "unassigned")
        assert unassigned["from_value"] == "a1@example.com"
        assert "a1@example.com is no longer an agent in rules.yaml" in unassigned["reason"]
        assert ("assign_ticket", (tid,)) in jobs                    # given out at once, as a new ticket is
        assert len(desk.inbox("a1@example.com")) == mailed_to_a1    # nothing more to the former agent

        assert desk.assign(tid) == "a2@example.com"
        given = body_text(desk.last("a2@example.com"))
        assert "It is burning again this morning." in given and "already overdue" not in given
        with desk.app.engine.connect() as conn:
            assert [t["kind"] for t in armed(conn, tid)] == ["respond"]   # the reopening mail's clock
    finally:
        desk_gen.close()


def test_a_colleague_setting_a_removed_agents_closed_ticket_going_again_leaves_it_to_the_group(make_app, db_url,
                                                                                             tmp_path):
    """The same on the agents' side: `#status open` by a colleague does not bring the former agent back."""
    desk_gen = open_desk(make_app, db_url, rules=THREE)
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "The printer is on fire.\n"))
        tid = desk.ticket()["id"]
        assert desk.assign(tid) == "a1@example.com"
        desk.reply_to(desk.last("a1@example.com"), "a1@example.com", "#close\nReplaced the fuser.\n")
        (tmp_path / "rules.yaml").write_text(THREE.replace(
            "  - {email: a1@example.com, name: A1, groups: [support]}\n", ""))
        assert reload(desk.app) is True
        mailed_to_a1 = len(desk.inbox("a1@example.com"))

        jobs: list[tuple] = []
        desk.app.enqueue = lambda name, args: jobs.append((name, args))
        desk.send(build_mail("a3@example.com", "#status open\n", to=desk.agent_address(tid, "a3@example.com"),
                             subject=f"Re: [#{tid}] Printer on fire"))
        ticket = desk.ticket(tid)
        assert (ticket["status"], ticket["assignee"]) == ("open", None)
        assert [e["from_value"] for e in desk.events(tid, "unassigned")] == ["a1@example.com"]
        assert ("assign_ticket", (tid,)) in jobs
        assert len(desk.inbox("a1@example.com")) == mailed_to_a1
    finally:
        desk_gen.close()


def test_release_covers_more_than_one_batch(make_app, db_url):
    app = make_app(db_url, rules=THREE)
    ids = _tickets(app, 5)
    with app.engine.begin() as conn:
        for ticket_id in ids:
            store.update_ticket(conn, ticket_id, utcnow(), assignee="left@example.com", status=Status.OPEN.value)
    assert release_departed(app, batch=2) == 5
    assert _assignees(app) == Counter({"a1@example.com": 2, "a2@example.com": 2, "a3@example.com": 1})


def test_broken_reload_keeps_the_last_good_rules(make_app, db_url, tmp_path, caplog):
    app = make_app(db_url, rules=THREE)
    before = app.rules
    (tmp_path / "rules.yaml").write_text(THREE + "timers:\n  new: {respond_within: soon}\n  bogus: {}\n")
    assert reload(app) is False
    assert app.rules is before
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "NOT applied (2 errors)" in errors[0]
    assert any("timers.new.respond_within: 'soon' is not a duration" in e for e in errors)
    assert any("timers.bogus: no status named 'bogus'" in e for e in errors)


def test_notice_goes_to_the_agent_with_their_signed_reply_address(make_app, db_url):
    app = make_app(db_url, rules=THREE)
    [ticket_id] = _tickets(app, 1)
    assign(app, ticket_id)
    with app.engine.connect() as conn:
        row = conn.execute(select(outbox)).mappings().one()
    msg = email.message_from_bytes(bytes(row["raw"]))
    assert row["recipient"] == "a1@example.com" and row["template"] == "agent/ticket_assigned"
    assert msg["Reply-To"] == reply_address(app.signer, "support@example.com", ticket_id, "a1@example.com")
    assert msg["Auto-Submitted"] == "auto-generated"


# ---------------------------------------------------------------- #assign


def test_assign_in_tx_agent_group_and_unknown(make_app, db_url):
    app = make_app(db_url, rules=THREE)
    [ticket_id] = _tickets(app, 1)
    now = datetime(2026, 5, 1, 12, 0)
    with app.engine.begin() as conn:
        notices = assign_in_tx(conn, app, ticket_id, "A3@example.com", now, "a1@example.com")
        assert [(n.recipient, n.agent_reply_to) for n in notices] == [("a3@example.com", "a3@example.com")]
        # group: by its strategy, never back to the current assignee
        notices = assign_in_tx(conn, app, ticket_id, "support", now, "a3@example.com")
        assert [n.recipient for n in notices] == ["a1@example.com"]
        with pytest.raises(ValueError, match="nobody@example.com is not an agent in rules.yaml"):
            assign_in_tx(conn, app, ticket_id, "nobody@example.com", now, "a1@example.com")
        with pytest.raises(ValueError, match="'sales' is neither an agent's address nor a group"):
            assign_in_tx(conn, app, ticket_id, "sales", now, "a1@example.com")
        assert store.get_ticket(conn, ticket_id)["assignee"] == "a1@example.com"


def test_assign_to_a_group_where_nobody_else_can_take_it_is_refused(make_app, db_url):
    """Unassigning would only let the next sweep give the ticket straight back: it stays, and why is said."""
    app = make_app(db_url, rules=THREE.replace("groups: [support]}", "groups: [support], away: true}", 2)
                   .replace("name: A2, groups: [support], away: true}", "name: A2, groups: [support], max_open: 1}"))
    [ticket_id, held_by_a2] = _tickets(app, 2)
    with app.engine.begin() as conn:
        store.update_ticket(conn, held_by_a2, utcnow(), assignee="a2@example.com")
    now = datetime(2026, 5, 1, 12, 0)
    with app.engine.begin() as conn:
        assert [n.recipient for n in assign_in_tx(conn, app, ticket_id, "support", now, "admin")] == [
            "a3@example.com"]
        with pytest.raises(ValueError) as refused:
            assign_in_tx(conn, app, ticket_id, "support", now, "a3@example.com")
        assert str(refused.value).startswith(
            "nobody else in support can take it now (a1@example.com is away; a2@example.com has 1 open tickets "
            "(max_open 1); a3@example.com has it); it stays with a3@example.com.")
        assert store.get_ticket(conn, ticket_id)["assignee"] == "a3@example.com"


ROUTED_TO_A1 = THREE.replace("  - then: {group: support}\n", "  - name: vip\n    if: {subject: VIP}\n"
                             "    then: {assignee: a1@example.com, group: support}\n"
                             "  - name: vip without a group\n    if: {subject: CEO}\n"
                             "    then: {assignee: a1@example.com}\n  - then: {group: support}\n")


def _routed(app, subject: str) -> dict:
    raw = (f"From: c@example.org\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject}@example.org>\r\n\r\nhelp\r\n").encode()
    key, message_id = dedupe_key(raw)
    store_raw(app.engine, raw, source="smtp", dedupe_key=key, message_id=message_id)
    drain(app)
    with app.engine.connect() as conn:
        ticket = conn.execute(select(tickets).order_by(tickets.c.id.desc())).mappings().first()
    assign(app, ticket["id"])   # the rule worker's job
    with app.engine.connect() as conn:
        return dict(assignee=conn.execute(select(tickets.c.assignee).where(tickets.c.id == ticket["id"])).scalar(),
                    skipped=conn.execute(select(events.c.reason).where(events.c.ticket_id == ticket["id"],
                                         events.c.kind == "route_assignee_skipped")).scalars().all())


@pytest.mark.parametrize("how", ["rules.yaml", "their word", "max_open"])
def test_a_routes_agent_who_is_away_or_full_leaves_the_ticket_to_the_routes_group(make_app, sqlite_url, how):
    """PRODUCT.md: away agents and agents over max_open are skipped; a route naming one is no exception."""
    rules = {"rules.yaml": ROUTED_TO_A1.replace("name: A1,", "name: A1, away: true,"),
             "max_open": ROUTED_TO_A1.replace("name: A1,", "name: A1, max_open: 1,")}.get(how, ROUTED_TO_A1)
    app = make_app(sqlite_url, rules=rules)
    if how == "their word":
        with app.engine.begin() as conn:
            set_absence(conn, "a1@example.com", utcnow(), None)
    if how == "max_open":   # one open ticket already
        with app.engine.begin() as conn:
            store.create_ticket(conn, subject="held", status="open", requester="d@example.org", group_name="support",
                                assignee="a1@example.com", created_at=utcnow(), updated_at=utcnow())
    routed = _routed(app, "VIP")
    assert routed["assignee"] in ("a2@example.com", "a3@example.com")
    (reason,) = routed["skipped"]
    assert reason.startswith("routes: vip names a1@example.com, but a1@example.com ") and reason.endswith(
        ": support assigns it")
    # No group to fall back on: theirs all the same, as before.
    assert _routed(app, "CEO") == dict(assignee="a1@example.com", skipped=[])


def test_a_routes_agent_who_is_available_gets_the_ticket(make_app, sqlite_url):
    app = make_app(sqlite_url, rules=ROUTED_TO_A1)
    assert _routed(app, "VIP") == dict(assignee="a1@example.com", skipped=[])
