"""`ticketd rules check` warns of rules that leave mail waiting for nobody; the daemon logs the same warnings."""

from __future__ import annotations

import time

from tests.cli import run_ticketd
from tests.conftest import MINIMAL_RULES, write_config
from tests.daemon import DaemonProcess
from tests.waiting import eventually

RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: bob@example.com, name: Bob, groups: [support]}
  - {email: carol@example.com, name: Carol, groups: [billing], away: true}
  - {email: dave@example.com, name: Dave}
  - {email: erin@example.com, name: Erin, groups: [sales]}
  - {email: alice2@example.com, name: "alice ", groups: [support]}
  - {email: sup@example.com, name: Support, groups: [support]}
groups:
  support: {}
  billing: {}
  legal: {}
  sales: {}
routes:
  - name: invoices
    if: {subject: invoice}
    then: {group: billing}
  - name: lawyers
    if: {subject: lawsuit}
    then: {group: legal}
  - name: everything else
    then: {group: support}
"""


def test_rules_check_warns_of_mail_that_would_wait_for_nobody_and_exits_0(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    done = run_ticketd("rules", "check", str(path), cwd=path.parent)
    assert done.returncode == 0, done.stderr
    said = done.stderr
    # Routes to a group nobody is in, or only away agents are in: each located at the route's group.
    assert f"{path}:17:19: warning: routes[0].then.group: every agent of group 'billing' is away " in said
    assert "carol@example.com" in said
    assert f"{path}:20:19: warning: routes[1].then.group: group 'legal' has no agents, so mail this route " \
           "sends there waits unassigned" in said
    # An available agent in no group never gets round-robin work.
    assert f"{path}:5:5: warning: agents[3]: dave@example.com is in no group, so round robin never gives them " \
           "work" in said
    # Two agents of one name: #assign by that name is refused.
    assert f"{path}:7:39: warning: agents[5].name: alice2@example.com has the name of alice@example.com " \
           "(line 2)" in said
    # An agent named as a group: #assign Support goes to the group.
    assert f"{path}:8:36: warning: agents[6].name: 'Support' is also a group's name" in said
    assert said.count("warning:") == 5, said
    assert "OK:" in done.stdout and "5 warning(s)" in done.stdout


def test_rules_check_warns_of_a_route_naming_an_away_agent(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(MINIMAL_RULES.replace("routes:\n", "routes:\n  - {if: {subject: VIP}, then: {assignee: "
                                          "carol@example.com, group: support}}\n  - {if: {subject: CEO}, then: "
                                          "{assignee: carol@example.com}}\n"))
    done = run_ticketd("rules", "check", str(path), cwd=path.parent)
    assert done.returncode == 0, done.stderr
    assert (f"{path}:9:43: warning: routes[0].then.assignee: carol@example.com is away, so support assigns "
            "what this route sends") in done.stderr
    assert (f"{path}:10:43: warning: routes[1].then.assignee: carol@example.com is away and this route names no "
            "group, so what it sends waits with them") in done.stderr
    assert done.stderr.count("warning:") == 2, done.stderr


def test_rules_check_warns_of_timer_keys_that_change_nothing(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(MINIMAL_RULES.replace(
        "  waiting_customer: {warn_after: 3d, close_after: 4d}\n",
        "  waiting_customer: {warn_after: 3d, close_after: 4d, business_hours: true}\n"
        "  postponed: {on_breach: notify}\n  in_development: {business_hours: true}\n")
        + "business_hours: {timezone: UTC, week: {mon: '09:00-17:00'}}\n")
    done = run_ticketd("rules", "check", str(path), cwd=path.parent)
    assert done.returncode == 0, done.stderr
    warned = [line.split(": warning: ", 1)[1] for line in done.stderr.splitlines()]
    assert warned == [
        "timers.waiting_customer.business_hours: business_hours counts respond_within only; warn_after and "
        "close_after here run in calendar time (a weekend included)",
        "timers.postponed.on_breach: on_breach says what a missed respond_within does, and this entry has none, "
        "so it changes nothing; add e.g. respond_within: 4h",
        "timers.in_development.business_hours: business_hours counts respond_within only, which this entry "
        "lacks, so it changes nothing"], done.stderr


def test_rules_check_warns_of_a_file_without_routes(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("agents:\n  - {email: alice@example.com, name: Alice, groups: [support]}\n"
                    "groups:\n  support: {}\n")
    done = run_ticketd("rules", "check", str(path), cwd=path.parent)
    assert done.returncode == 0, done.stderr
    assert f"{path}:1:1: warning: routes: no routes, so every new ticket waits in no group, unassigned" \
           in done.stderr
    assert done.stderr.count("warning:") == 1, done.stderr


def test_rules_check_of_a_sound_file_warns_of_nothing(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(MINIMAL_RULES)
    done = run_ticketd("rules", "check", str(path), cwd=path.parent)
    assert done.returncode == 0 and "warning" not in done.stderr + done.stdout, done.stderr + done.stdout


def test_daemon_logs_the_warnings_once_at_start_and_on_each_reload(tmp_path, sqlite_url):
    config = write_config(tmp_path, sqlite_url, rules=RULES)
    daemon = DaemonProcess(config).start()
    try:
        time.sleep(1)
        out = daemon.output()
        assert out.count("WARNING ticketd.rules: ") == 5, out
        assert out.count("group 'legal' has no agents") == 1, out
        # A live reload of a file with one warning of its own says that one, once.
        (tmp_path / "rules.yaml").write_text(RULES.replace("  - name: lawyers\n    if: {subject: lawsuit}\n"
                                                           "    then: {group: legal}\n", "")
                                             .replace("away: true", "away: false"))
        eventually(lambda: "rules reloaded" in daemon.output(), timeout=15)
        time.sleep(1)
        out = daemon.output()
        after = out[out.index("rules reloaded"):]
        assert after.count("WARNING ticketd.rules: ") == 3, after
        assert "legal" not in after and "billing" not in after
        assert after.count("dave@example.com is in no group") == 1, after
        assert daemon.terminate() == 0
    finally:
        daemon.stop()
