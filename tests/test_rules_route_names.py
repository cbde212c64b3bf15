"""Two routes of one name: the file applies, and `rules check` warns that the history cannot tell them apart."""

from __future__ import annotations

from tests.cli import run_ticketd

RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support, billing]}
groups:
  support: {}
  billing: {}
routes:
  - name: invoices
    if: {subject: "(?i)invoice"}
    then: {group: billing}
  - name: invoices
    if: {subject: "(?i)refund"}
    then: {group: billing, priority: high}
  - if: {from: "@partner\\\\.example$"}
    then: {group: billing}
  - name: route 3
    if: {subject: "(?i)urgent"}
    then: {group: support, priority: urgent}
  - name: everything else
    then: {group: support}
"""


def test_rules_check_warns_of_two_routes_of_one_name_and_exits_0(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    done = run_ticketd("rules", "check", str(path), cwd=path.parent)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if ": warning: " in line]
    assert warned == [
        f"{path}:10:11: warning: routes[1].name: 'invoices' is also the name of routes[0] (line 7), so a "
        "ticket's history (its routed event) cannot tell which of them matched; give each route a name of its own",
        # The third route has no name, so it is called `route 3` where the fourth is named so.
        f"{path}:15:11: warning: routes[3].name: 'route 3' is also the name of routes[2] (line 13), so a "
        "ticket's history (its routed event) cannot tell which of them matched; give each route a name of its own",
    ], done.stderr
    assert "(2 warning(s))" in done.stdout


def test_routes_of_names_of_their_own_give_no_warning(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("  - name: invoices\n    if: {subject: \"(?i)refund\"}",
                                  "  - name: refunds\n    if: {subject: \"(?i)refund\"}")
                    .replace("name: route 3", "name: urgent"))
    done = run_ticketd("rules", "check", str(path), cwd=path.parent)
    assert done.returncode == 0 and done.stderr == "", done.stderr
