"""rules.yaml: strict validation with located errors, routing, RE2 safety, `rules check` / `rules test`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import CORPUS, MINIMAL_RULES
from ticketd.cli import main
from ticketd.domain.rules import MailFacts
from ticketd.rules_file import RulesError, load_rules_text, parse_duration

HEAD = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
groups:
  support: {assign: round_robin}
"""

# (file text, expected error lines: each a substring of one error, in file order)
BROKEN = [
    ("agents:\n  - {email: alice@example.com, groups: [suport]}\ngroups:\n  support: {}\n",
     ["rules.yaml:2:41: agents[0].groups[0]: no group named 'suport'; did you mean 'support'?"]),
    (HEAD + "routes:\n  - name: x\n    if: {subjekt: hello}\n",
     ["rules.yaml:7:10: routes[0].if.subjekt: unknown condition `subjekt`; did you mean `subject`?"]),
    (HEAD + "routes:\n  - name: x\n    iff: {subject: hello}\n",
     ["rules.yaml:7:5: routes[0].iff: unknown key `iff`; did you mean `if`?"]),
    (HEAD + "routes:\n  - name: x\n    if: {subject: '(a)\\1'}\n",
     ["rules.yaml:7:19: routes[0].if.subject: '(a)\\\\1' is not a pattern RE2 accepts (invalid escape sequence",
      "without backreferences or lookaround"]),
    (HEAD + "routes:\n  - if: {body: '(?=x)'}\n",
     ["rules.yaml:6:16: routes[0].if.body: '(?=x)' is not a pattern RE2 accepts (invalid perl operator: (?="]),
    (HEAD + "routes:\n  - then: {group: billing}\n",
     ["rules.yaml:6:19: routes[0].then.group: no group named 'billing'; known groups: support"]),
    (HEAD + "routes:\n  - then: {assignee: alise@example.com}\n",
     ["routes[0].then.assignee: no agent named 'alise@example.com'; did you mean 'alice@example.com'?"]),
    (HEAD + "routes:\n  - then: {priority: top}\n",
     ["rules.yaml:6:22: routes[0].then.priority: got 'top'; write one of 'low', 'normal', 'high' or 'urgent'"]),
    (HEAD + "routes:\n  - if: {priority: hgih}\n",
     ["routes[0].if.priority: 'hgih' is not a priority; write one of low, normal, high, urgent"]),
    (HEAD + "routes:\n  - then: {tags: [Bad Tag]}\n",
     ["routes[0].then.tags[0]: 'Bad Tag' is not a tag; write lower-case ASCII letters"]),
    (HEAD + "timers:\n  new: {respond_within: 4 hours}\n",
     ["rules.yaml:6:25: timers.new.respond_within: '4 hours' is not a duration: write <n>s, <n>m, <n>h or <n>d"]),
    (HEAD + "timers:\n  new: {respond_within: 0s}\n",
     ["timers.new.respond_within: '0s' is zero; write a positive duration"]),
    (HEAD + "timers:\n  new: {respond_within: 4h, on_breach: escalate}\n",
     ["timers.new.on_breach: got 'escalate'; write one of 'reassign' or 'notify'"]),
    (HEAD + "timers:\n  waiting: {warn_after: 1d}\n",
     ["rules.yaml:6:3: timers.waiting: no status named 'waiting'; did you mean 'waiting_customer'?"]),
    (HEAD + "timers:\n  open: {warn_after: 1d}\n",
     ["timers.open.warn_after: warn_after only applies to waiting_customer and solution_proposed"]),
    (HEAD + "timers:\n  waiting_customer: {warn_after: 3d, close_after: 2d}\n",
     ["timers.waiting_customer.close_after: close_after (2d) must be later than warn_after (3d)"]),
    # Without close_after the reminder promised a close that never came.
    (HEAD + "timers:\n  solution_proposed: {warn_after: 3d}\n",
     ["timers.solution_proposed.warn_after: solution_proposed has no default close_after: give both"]),
    (HEAD + "timers:\n  solution_proposed: {close_after: 7d}\n",
     ["timers.solution_proposed.close_after: solution_proposed has no default warn_after: give both"]),
    (HEAD + "timers:\n  closed: {respond_within: 1h}\n",
     ["timers.closed: a closed ticket has no timers; remove this entry"]),
    ("agents:\n  - {email: alice@example.com, awya: true}\n",
     ["rules.yaml:2:32: agents[0].awya: unknown key `awya`; did you mean `away`?"]),
    ("agents:\n  - {email: alice@example.com, max_open: 0}\n",
     ["agents[0].max_open: got 0; write a whole number of at least 1"]),
    ("agents:\n  - {email: alice, away: maybe}\n",
     ["agents[0].away: got 'maybe'; write true or false"]),
    ("agents:\n  - {email: alice@example.com, groups: []}\n",
     ["rules.yaml:2:5: agents[0].name: write the name customers see on this agent's replies (their address "
      "stays private)"]),
    ("agents:\n  - {email: not-an-address}\n",
     ["agents[0].email: 'not-an-address' is not an address; write e.g. alice@example.com"]),
    ("agents:\n  - {email: a@example.com}\n  - {email: A@example.com}\n",
     ["rules.yaml:3:13: agents[1].email: a@example.com is listed twice"]),
    ("groups:\n  support: {assign: round_robbin}\n",
     ["groups.support.assign: got 'round_robbin'; write one of 'round_robin' or 'least_open'"]),
    ("agent:\n  - {email: a@example.com}\n",
     ["rules.yaml:1:1: agent: unknown key `agent`; did you mean `agents`?"]),
    ("agents: {email: a@example.com}\n",
     ["agents: write a list of entries, each starting with -"]),
    # the file ends before the }: the error is where the { opened, not past the last line
    ("agents:\n  - {email: a@example.com\n",
     ["rules.yaml:2:5: not valid YAML: the { opened here is never closed; add the }"]),
    ("- just\n- a list\n",
     ["(top level): the file must be a mapping"]),
    (HEAD + "daily_summary: {at: 9:00}\n",
     ["daily_summary.at: got 9:00, which YAML reads as the number 540; quote it: '9:00'"]),
    ("agents:\n\t- {email: a@example.com, name: A}\n",
     ["rules.yaml:2:1: not valid YAML: a tab; YAML indents with spaces only, write spaces instead"]),
    (HEAD + "routes:\n  - then: {group: support, tags: [счёт]}\n",
     ["routes[0].then.tags[0]: 'счёт' is not a tag; write lower-case ASCII letters (a-z)"]),
    (HEAD + "routes:\n  - if: {subject: '(?i)\\bсчёт\\b'}\n    then: {group: support}\n",
     ["rules.yaml:6:19: routes[0].if.subject: '(?i)\\\\bсчёт\\\\b': \\b sees only ASCII letters, so it never matches "
      "beside 'с'"]),
    # PyYAML keeps the last of a repeated key: the first would vanish without a word
    ("routes:\n  - name: a\n    if: {subject: x}\n    if: {from: y}\n    then: {priority: high}\n",
     ["rules.yaml:4:5: `if` is written twice in one mapping (first on line 3); keep one"]),
    ("timers:\n  new: {respond_within: 4h}\nagents: []\ntimers:\n  open: {respond_within: 1d}\n",
     ["rules.yaml:4:1: `timers` is written twice in one mapping (first on line 1); keep one"]),
    (HEAD + "business_hours: {timezone: Mars/Olympus, week: {mon: '09:00-17:00'}}\n",
     ["business_hours.timezone: 'Mars/Olympus' is not a time zone"]),
    (HEAD + "business_hours: {week: {monday: '9-5'}}\n",
     ["business_hours.week.monday: unknown day `monday`; write one of mon, tue"]),
    (HEAD + "business_hours: {week: {mon: '9-5'}}\n",
     ["business_hours.week.mon: '9-5' is not a span of hours; write e.g. '09:00-17:00'"]),
    (HEAD + "timers:\n  new: {respond_within: 4h, business_hours: true}\n",
     ["timers.new.business_hours: business_hours: true needs a top-level business_hours"]),
]


@pytest.mark.parametrize("text, expected", BROKEN, ids=[e[0] for _, e in BROKEN])
def test_broken_file_is_refused_with_located_explained_errors(text, expected):
    with pytest.raises(RulesError) as caught:
        load_rules_text(text, "rules.yaml")
    errors = caught.value.errors
    for want in expected:
        assert any(want in line for line in errors), f"{want!r} not in {errors}"


@pytest.mark.parametrize("text, error", [
    (HEAD + "routes:\n  - then: billing\n", "rules.yaml:6:11: routes[0].then: got 'billing'; write a mapping"),
    ("agents:\n  - {email: a@example.com, name: 12345}\n", "rules.yaml:2:34: agents[0].name: got 12345; "),
])
def test_a_value_of_the_wrong_kind_is_one_error_not_two_that_contradict_it(text, error):
    """`then: billing` was also "nothing under then:", and `name: 12345` also "write the name"."""
    with pytest.raises(RulesError) as caught:
        load_rules_text(text, "rules.yaml")
    (only,) = caught.value.errors
    assert only.startswith(error), only


def test_a_byte_that_is_not_utf8_is_located_by_line_and_column():
    from ticketd.rules_file import load_rules_bytes

    with pytest.raises(RulesError) as caught:
        load_rules_bytes(b"agents:\n  - {email: a@example.com, name: J\xf6rg}\n", "rules.yaml")
    assert caught.value.errors == ["rules.yaml:2:35: byte 0xf6 is not UTF-8; save the file as UTF-8"]


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f"])
def test_a_control_character_is_located_by_line_and_column_and_check_exits_1(tmp_path, char):
    """Found by mutating rules files at random: `rules check` (and the daemon's reload, and `status`) met
    YAML's reader error with a traceback; a NUL or an escape pasted with a pattern is invisible in an editor."""
    from ticketd.rules_file import load_rules_bytes

    text = f"agents:\n  - {{email: a@example.com, name: A{char}}}\ngroups: {{}}\n"
    with pytest.raises(RulesError) as caught:
        load_rules_bytes(text.encode(), "rules.yaml")
    assert caught.value.errors == [f"rules.yaml:2:35: character U+{ord(char):04X} is not allowed in YAML (a "
                                   "control character, which most editors do not show); delete it"]
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    done = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert done.exit_code == 1 and not isinstance(done.exception, Exception), done.exception   # no traceback
    assert f"{path}:2:35: character U+{ord(char):04X} is not allowed" in done.output


def test_a_file_nested_too_deep_for_yaml_is_an_error_not_a_traceback(tmp_path):
    """PyYAML's composer recurses once per level: 5 000 brackets ended `rules check` (and the daemon's
    reload) in RecursionError."""
    path = tmp_path / "rules.yaml"
    path.write_text("agents: " + "[" * 5000 + "]" * 5000 + "\n")
    done = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert done.exit_code == 1 and not isinstance(done.exception, Exception), done.exception   # no traceback
    assert f"{path}: not valid YAML: nested too deep to read" in done.output


def test_every_error_of_a_file_is_reported_at_once():
    text = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [suport], awya: true}
groups:
  support: {assign: round_robbin}
routes:
  - if: {subject: '(a)\\1', sender: x}
    then: {group: billing, priority: top}
timers:
  new: {respond_within: 4 hours}
"""
    with pytest.raises(RulesError) as caught:
        load_rules_text(text, "/etc/ticketd/rules.yaml")
    errors = caught.value.errors
    assert len(errors) == 8, errors
    # A wrong key or value in a mapping hides nothing else in it: the unknown
    # group beside `awya`, the missing one beside `priority: top`.
    assert [e.split(": ")[0] for e in errors] == [
        "/etc/ticketd/rules.yaml:2:54", "/etc/ticketd/rules.yaml:2:63", "/etc/ticketd/rules.yaml:4:21",
        "/etc/ticketd/rules.yaml:6:19", "/etc/ticketd/rules.yaml:6:28", "/etc/ticketd/rules.yaml:7:19",
        "/etc/ticketd/rules.yaml:7:38", "/etc/ticketd/rules.yaml:9:25"]


def test_minimal_file_loads_frozen_and_hashed():
    import dataclasses
    import hashlib

    rules = load_rules_text(MINIMAL_RULES)
    assert rules.digest == hashlib.sha256(MINIMAL_RULES.encode()).hexdigest()
    assert [a.email for a in rules.members("billing")] == ["bob@example.com", "carol@example.com"]
    assert rules.agent("CAROL@example.com").away is True
    assert rules.timer("waiting_customer").close_after == 4 * 86400
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.digest = "x"


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("4h", 14400), ("3d", 259200),
                                           ("1h30m", 5400), ("1d 2h", 93600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["4", "4 hours", "h", "", "-1h", "1.5h", True])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


EXTENDED = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com, name: Bob, groups: [billing], max_open: 5}
groups:
  support: {assign: round_robin}
  billing: {assign: least_open}
routes:
  - name: vip senders
    if: {from: '@bigcorp\\.example$'}
    then: {priority: urgent, tags: [vip]}
    continue: true
  - name: urgent invoices
    if: {subject: '(?i)invoice', priority: urgent}
    then: {group: billing, assignee: bob@example.com, type: question}
  - name: robots
    if: {header.X-Mailer: '(?i)cronbot', body: ['disk full', 'out of memory']}
    then: {group: support, suppress_ack: true, tags: [robot]}
  - name: everything else
    then: {group: support}
timers:
  new: {respond_within: 1h, on_breach: notify}
"""


def test_a_closing_route_may_not_name_an_assignee():
    head = MINIMAL_RULES.split("routes:")[0]
    text = head + "routes:\n  - {then: {assignee: alice@example.com, close: true}}\n"
    with pytest.raises(RulesError) as caught:
        load_rules_text(text, "rules.yaml")
    assert any("routes[0].then.close" in e and "a ticket the route closes goes to nobody" in e
               for e in caught.value.errors), caught.value.errors
    closing = load_rules_text(head + "routes:\n  - {then: {close: true}}\n")
    assert closing.route(MailFacts()).close


def test_routes_conditions_continue_and_actions():
    rules = load_rules_text(EXTENDED)
    vip = rules.route(MailFacts(from_addr="ceo@bigcorp.example", subject="Invoice 42"))
    assert vip.routes == ("vip senders", "urgent invoices")
    assert (vip.group, vip.assignee, vip.priority, vip.type, vip.tags) == (
        "billing", "bob@example.com", "urgent", "question", ("vip",))
    assert "from matches /@bigcorp\\.example$/" in vip.reasons[0][1][0]
    assert vip.reasons[1][1] == ("subject matches /(?i)invoice/ at 'Invoice'", "priority is urgent")

    plain_invoice = rules.route(MailFacts(from_addr="joe@small.example", subject="invoice"))
    assert plain_invoice.routes == ("everything else",) and plain_invoice.group == "support"

    robot = rules.route(MailFacts(from_addr="cron@host.example", body="alert: out of memory on db1",
                                  headers={"x-mailer": "CronBot 2.1"}))
    assert robot.routes == ("robots",) and robot.suppress_ack and robot.tags == ("robot",)
    not_robot = rules.route(MailFacts(body="out of memory", headers={"x-mailer": "Thunderbird"}))
    assert not_robot.routes == ("everything else",) and not not_robot.suppress_ack


def test_word_classes_in_patterns_know_every_script():
    rules = load_rules_text(HEAD + "routes:\n  - if: {subject: '(?i)^\\w+ не пришёл', body: '[\\w.]+@'}\n"
                                   "    then: {priority: high}\n  - if: {subject: '\\bok\\b'}\n"
                                   "    then: {priority: low}\n")
    assert rules.route(MailFacts(subject="Счёт не пришёл", body="пишите на почта.ру@")).priority == "high"
    assert rules.route(MailFacts(subject="is it ok?")).priority == "low"   # ASCII \b as before
    assert rules.route(MailFacts(subject="Счёт пришёл")).priority is None


def test_address_patterns_match_in_any_case_and_the_others_as_written():
    """Addresses are kept in lower case: a domain copied as a mail client shows it must still match."""
    rules = load_rules_text(HEAD + "routes:\n  - if: {from: '@BigCustomer\\.com$'}\n    then: {priority: urgent}\n"
                                   "  - if: {to: '^Sales@Example\\.com$'}\n    then: {priority: high}\n"
                                   "  - if: {subject: 'VIP'}\n    then: {priority: low}\n")
    assert rules.route(MailFacts(from_addr="john.smith@bigcustomer.com")).priority == "urgent"
    assert rules.route(MailFacts(to="sales@example.com")).priority == "high"
    assert rules.route(MailFacts(subject="vip")).priority is None


def test_catastrophic_pattern_runs_in_linear_time():
    # (a+)+$ takes exponential time in a backtracking engine on "aaa...b".
    rules = load_rules_text(HEAD + "routes:\n  - if: {body: '(a+)+$'}\n    then: {group: support}\n")
    body = "a" * 200_000 + "b"
    started = time.monotonic()
    decision = rules.route(MailFacts(body=body))
    assert time.monotonic() - started < 1.0
    assert decision.routes == ()


# ---------------------------------------------------------------- the CLI


def test_rules_check_ok_prints_one_line_summary(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(MINIMAL_RULES)
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "3 agents, 2 groups, 2 routes, timers for new, open, waiting_customer, digest " in lines[0]
    # Without timers, waiting_customer still warns and closes by PRODUCT.md's defaults; one of each is no plural.
    path.write_text("agents: [{email: a@example.com, name: A, groups: [s]}]\ngroups: {s: {assign: round_robin}}\n"
                    "routes: [{then: {group: s}}]\n")
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert "1 agent, 1 group, 1 route, timers for waiting_customer (defaults), digest " in result.output


def test_rules_check_broken_exits_1_with_every_error(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(HEAD + "routes:\n  - then: {group: billing, priority: top}\n    iff: {}\n")
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:6:38: routes[0].then.priority: got 'top'" in result.output
    assert f"{path}:7:5: routes[0].iff: unknown key `iff`; did you mean `if`?" in result.output
    assert f"{path}:6:19: routes[0].then.group: no group named 'billing'" in result.output
    assert "3 error(s); nothing would be applied" in result.output


def test_rules_check_with_a_broken_config_says_so_instead_of_checking_another_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules.yaml").write_text(MINIMAL_RULES)   # valid, but not the file the config names
    config = tmp_path / "ticketd.yaml"
    config.write_text("rules_file: other.yaml\nsmtp: {listn: 127.0.0.1:2525}\n")
    result = CliRunner().invoke(main, ["rules", "check", "--config", str(config)])
    assert result.exit_code == 1
    # settings.py words the error (9e812c4: "unknown key ... did you mean `listen`?"); the point is that it is said
    assert "smtp.listn: " in result.output and "OK" not in result.output


def _corpus_mail_with(subject_word: str) -> Path:
    for path in sorted((CORPUS / "zammad").glob("*.box")):
        for line in path.read_bytes().split(b"\n\n", 1)[0].splitlines():
            if line.lower().startswith(b"subject:") and subject_word.encode() in line.lower():
                return path
    raise AssertionError(f"no corpus mail with {subject_word!r} in its headers")


def test_rules_test_dry_run_against_corpus_mail(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    mail = CORPUS / "zammad" / "mail002.box"
    result = CliRunner().invoke(main, ["rules", "test", str(rules), str(mail)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "from martin@example.com" in out
    assert "route: 'everything else' matched because no conditions" in out
    assert "group: support" in out
    assert "agent: alice@example.com (round_robin in support, from no database: first eligible)" in out
    assert "timer: respond_within 4h in new, due " in out and "on breach: reassign" in out
    assert "mail: requester/ticket_opened to martin@example.com" in out
    assert "mail: agent/ticket_assigned to alice@example.com" in out
    assert list(tmp_path.iterdir()) == [rules]   # nothing written


def test_rules_test_beside_a_config_whose_database_does_not_exist_creates_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ticketd.yaml").write_text("database_url: sqlite:///var/none.db\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    result = CliRunner().invoke(main, ["rules", "test", str(rules), str(CORPUS / "zammad" / "mail002.box")])
    assert result.exit_code == 0, result.output
    assert "from no database: first eligible" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules.yaml", "ticketd.yaml"]


def test_rules_test_reads_the_cursor_from_the_database_without_writing(tmp_path, make_app):
    from sqlalchemy import insert, select

    from tests.conftest import write_config
    from ticketd.store.tables import rr_cursor, tickets

    app = make_app(f"sqlite:///{tmp_path}/t.db")
    with app.engine.begin() as conn:
        conn.execute(insert(rr_cursor).values(group_name="support", last_agent="alice@example.com",
                                              updated_at=__import__("datetime").datetime(2026, 1, 1)))
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/t.db")
    result = CliRunner().invoke(main, ["rules", "test", str(tmp_path / "rules.yaml"),
                                       str(CORPUS / "zammad" / "mail002.box"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "agent: bob@example.com (round_robin in support, from the database's cursor)" in result.output
    with app.engine.connect() as conn:
        assert conn.execute(select(rr_cursor.c.last_agent)).scalar_one() == "alice@example.com"
        assert conn.execute(select(tickets)).first() is None


def test_rules_test_shows_why_a_route_matched(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    mail = _corpus_mail_with("invoice")
    result = CliRunner().invoke(main, ["rules", "test", str(rules), str(mail)])
    assert result.exit_code == 0, result.output
    assert "route: 'invoices go to billing' matched because subject matches /(?i)invoice|refund/" in result.output
    assert "group: billing  priority: high" in result.output
    # carol is away: bob is the only one in billing
    assert "agent: bob@example.com" in result.output


def test_daemon_reloads_on_change_and_sighup_and_refuses_a_broken_file(tmp_path, sqlite_url):
    import signal

    from sqlalchemy import select

    from tests.conftest import free_port, write_config
    from tests.daemon import DaemonProcess
    from tests.sink import Sink, customer_mail, wait_until
    from ticketd.app import build_app
    from ticketd.settings import load_settings
    from ticketd.store.tables import events, tickets

    away = MINIMAL_RULES.replace("groups: [support]}", "groups: [support], away: true}").replace(
        "groups: [support, billing]}", "groups: [support, billing], away: true}")
    sink = Sink(free_port()).start()
    config = write_config(tmp_path, sqlite_url, rules=away, outbound_port=sink.port)
    app = build_app(load_settings(config, environ={}))
    daemon = DaemonProcess(config).start()
    try:
        import smtplib

        with smtplib.SMTP("127.0.0.1", app.settings.smtp.host_port[1]) as client:
            client.send_message(customer_mail(subject="Printer on fire"))

        def waiting():
            with app.engine.connect() as conn:
                return conn.execute(select(events.c.id).where(events.c.kind == "assignment_waiting")).first()

        wait_until(waiting)
        # A broken file is not applied, and says why at ERROR level.
        (tmp_path / "rules.yaml").write_text(away.replace("away: true", "away: perhaps"))
        wait_until(lambda: "NOT applied" in daemon.output(), timeout=10)
        assert "agents[0].away: got 'perhaps'; write true or false" in daemon.output()
        assert " ERROR " in daemon.output()
        daemon.proc.send_signal(signal.SIGHUP)   # still broken: said again, still not applied
        wait_until(lambda: daemon.output().count("NOT applied") >= 2, timeout=10)
        with app.engine.connect() as conn:
            assert conn.execute(select(tickets.c.assignee)).scalar_one() is None

        # alice comes back: the watcher reloads and the waiting ticket is assigned
        (tmp_path / "rules.yaml").write_text(away.replace("Alice, groups: [support], away: true",
                                                          "Alice, groups: [support], away: false"))
        wait_until(lambda: [m for m in sink.messages if "alice@example.com" in m.rcpt_tos
                            and "Assigned to you" in m.message["Subject"]], timeout=10)
        with app.engine.connect() as conn:
            assert conn.execute(select(tickets.c.assignee)).scalar_one() == "alice@example.com"
        assert "rules reloaded from" in daemon.output()
    finally:
        daemon.stop()
        sink.stop()
        app.engine.dispose()


# ---------------------------------------------------------------- audit: durations, empty files, routes, wording


def timed(status: str, key: str, value: str) -> str:
    """HEAD with one timer setting."""
    return HEAD + f"timers:\n  {status}: {{{key}: {value}}}\n"


@pytest.mark.parametrize("status, key, value", [
    ("new", "respond_within", "3000000d"), ("new", "respond_within", "999999999999d"),
    ("open", "respond_within", "3651d"), ("open", "respond_within", "87601h"),
    ("new", "respond_within", "1" + "0" * 5000 + "s"),
    ("waiting_customer", "warn_after", "3000000d"), ("waiting_customer", "close_after", "3000000d"),
    ("in_development", "remind_before", "3000000d")])
def test_a_duration_longer_than_ten_years_is_refused_where_it_is_written(status, key, value):
    with pytest.raises(RulesError) as caught:
        load_rules_text(timed(status, key, value), "rules.yaml")
    shown = value if len(value) <= 24 else value[:12] + "..."   # 5000 digits are not repeated back
    assert caught.value.errors == [
        (f"rules.yaml:6:{len(status) + 8 + len(key)}: timers.{status}.{key}: {shown!r} is longer than 3650d "
        "(10 years), the longest duration rules.yaml accepts; write at most 3650d, e.g. 30d")]


def test_the_longest_duration_accepted_still_plans_timers_in_range():
    from datetime import datetime

    from ticketd.domain.timers import plan

    text = timed("new", "respond_within", "3650d") + (
        "  waiting_customer: {warn_after: 3649d, close_after: 3650d}\n")
    rules = load_rules_text(text)
    assert rules.timer("new").respond_within == 3650 * 86400
    now = datetime(9980, 1, 1)   # near datetime's end, ten years still fit
    assert [t.kind for t in plan("new", rules.timer("new"), now)] == ["respond"]
    assert [t.kind for t in plan("waiting_customer", rules.timer("waiting_customer"), now)] == ["warn", "close"]


def test_rules_test_refuses_a_huge_duration_instead_of_crashing(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES.replace("respond_within: 4h", "respond_within: 999999999999d"))
    result = CliRunner().invoke(main, ["rules", "test", str(rules), str(CORPUS / "zammad" / "mail002.box")])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "timers.new.respond_within: '999999999999d' is longer than 3650d" in result.output


@pytest.mark.parametrize("text", ["", "\n\n   \n", "# agents go here\n# later\n", "---\n", "{}\n"])
def test_an_empty_file_is_refused(text, tmp_path):
    with pytest.raises(RulesError) as caught:
        load_rules_text(text, "rules.yaml")
    assert caught.value.errors == [("rules.yaml:1:1: (top level): the file is empty; a rules file needs at least "
                                   "`agents:`, e.g. agents: [{email: alice@example.com, name: Alice}]")]
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1 and "the file is empty" in result.output


@pytest.mark.parametrize("route, line_col", [
    ("  - name: x\n    if: {subject: invoice}\n", "6:5"),
    ("  - name: x\n    if: {subject: invoice}\n    then: {}\n", "8:11"),
    ("  - name: x\n    if: {subject: invoice}\n    then:\n", "8:10"),
    ("  - name: x\n    then: {tags: [], suppress_ack: false}\n", "7:11"),
])
def test_a_route_that_does_nothing_is_refused(route, line_col):
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + "routes:\n" + route, "rules.yaml")
    assert caught.value.errors == [
        (f"rules.yaml:{line_col}: routes[0].then: nothing under `then:`, so mail this route matches stops here "
        "(the first match wins) and waits in no group; write what it does, e.g. then: {group: support}, "
        "or remove the route")]


def test_a_continuing_route_without_then_is_refused_too():
    # It would only add its name to the `routed` event: nothing an admin means.
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + "routes:\n  - if: {subject: invoice}\n    continue: true\n"
                               "  - then: {group: support}\n", "rules.yaml")
    assert caught.value.errors == [
        ("rules.yaml:6:5: routes[0].then: with continue: true and nothing under `then:`, this route changes "
        "nothing; write what it does, e.g. then: {tags: [vip]}, or remove the route")]


@pytest.mark.parametrize("then", ["{priority: extreme, type: complaint}", "{prority: high}"])
def test_a_route_with_only_wrong_actions_hears_about_them_not_that_it_has_none(then):
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + f"routes:\n  - name: x\n    then: {then}\n", "rules.yaml")
    errors = caught.value.errors
    assert errors and all(".then." in e for e in errors), errors
    assert not any("nothing under `then:`" in e for e in errors), errors


def test_an_unknown_timer_status_lists_the_known_statuses():
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + "timers:\n  bogus_status: {respond_within: 1h}\n", "rules.yaml")
    assert caught.value.errors == [
        "rules.yaml:6:3: timers.bogus_status: no status named 'bogus_status'; known statuses: new, open, "
        "waiting_customer, postponed, in_development, solution_proposed"]


@pytest.mark.parametrize("key, example", [("subject", "['(?i)invoice']"), ("header.X-Priority", "['(?i)invoice']"),
                                          ("type", "[bug]"), ("priority", "[high]")])
def test_an_empty_condition_list_is_refused(key, example):
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + f"routes:\n  - if: {{{key}: []}}\n    then: {{group: support}}\n", "rules.yaml")
    assert caught.value.errors == [
        (f"rules.yaml:6:{len(key) + 12}: routes[0].if.{key}: an empty list matches no mail, so this route never "
        f"applies; write at least one value, e.g. {key}: {example}, or remove `{key}`")]


@pytest.mark.parametrize("word", ["yes", "no", "on", "Off"])
def test_a_yaml_boolean_where_text_belongs_is_one_error_saying_quote_it(word):
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + f"routes:\n  - if: {{subject: {word}}}\n    then: {{group: support}}\n", "rules.yaml")
    value = "true" if word in ("yes", "on") else "false"
    assert caught.value.errors == [
        f"rules.yaml:6:19: routes[0].if.subject: got {word}, which YAML reads as {value}; quote it: '{word}'"]


def test_a_list_with_a_number_is_one_error_at_the_item():
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + "routes:\n  - if: {subject: [invoice, 42]}\n    then: {group: support}\n")
    assert len(caught.value.errors) == 1
    assert "routes[0].if.subject[1]: got 42; write a text value" in caught.value.errors[0]


@pytest.mark.parametrize("value", ["4", "'4'", '"4"'])
def test_a_duration_without_unit_says_add_a_unit(value):
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + f"timers:\n  new: {{respond_within: {value}}}\n", "rules.yaml")
    [error] = caught.value.errors
    assert error.startswith("rules.yaml:6:25: timers.new.respond_within: ")
    assert "it has no unit; add one, e.g. '4h' (s, m, h or d)" in error and "quote" not in error


def test_a_boolean_duration_says_what_yaml_read():
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + "timers:\n  new: {respond_within: yes}\n", "rules.yaml")
    assert caught.value.errors == [
        "rules.yaml:6:25: timers.new.respond_within: got yes, which YAML reads as true; write a duration, e.g. 4h"]


@pytest.mark.parametrize("value, shown", [("2.5", "2.5"), ("true", "true"), ("yes", "yes"), ("'5'", "'5'")])
def test_max_open_wants_a_whole_number(value, shown):
    with pytest.raises(RulesError) as caught:
        load_rules_text(f"agents:\n  - {{email: alice@example.com, name: Alice, max_open: {value}}}\n", "rules.yaml")
    [error] = caught.value.errors
    assert error.startswith(f"rules.yaml:2:55: agents[0].max_open: got {shown}; ")
    assert error.endswith("write a whole number of at least 1, e.g. 5")
    assert "Input should" not in error


@pytest.mark.parametrize("route, line_col, what", [
    ("  - if: {subject: 'invoice}\n    then: {group: support}\n", "6:19", "the quote opened here is never closed"),
    ('  - name: "invoices\n    then: {group: support}\n', "6:11", "the quote opened here is never closed"),
    ("  - if: {subject: invoice}\n    then: {group: support, tags: [a, b\n", "7:34",
     "the [ opened here is never closed"),
])
def test_an_unclosed_quote_or_bracket_is_reported_where_it_opens(route, line_col, what):
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + "routes:\n" + route, "rules.yaml")
    [error] = caught.value.errors
    assert error.startswith(f"rules.yaml:{line_col}: not valid YAML: {what}"), error


@pytest.mark.parametrize("pair", ["{warn_after: soon, close_after: 2d}", "{warn_after: 1d, close_after: 1d1d}"])
def test_a_duration_not_understood_is_one_error_not_a_second_about_the_pair(pair):
    """Compared with the 3d default in its place, `close_after (2d) must be later than warn_after (soon)`
    followed the real error, naming a value it had not compared."""
    with pytest.raises(RulesError) as caught:
        load_rules_text(HEAD + f"timers:\n  waiting_customer: {pair}\n", "rules.yaml")
    (error,) = caught.value.errors
    assert "is not a duration" in error


def test_solution_proposed_with_both_timers_is_taken():
    rules = load_rules_text(HEAD + "timers:\n  solution_proposed: {warn_after: 3d, close_after: 7d}\n", "rules.yaml")
    assert rules.timers["solution_proposed"].warn_after == 3 * 86400
    assert rules.timers["solution_proposed"].close_after == 7 * 86400
