"""A route below one that matches every mail and stops never applies: `rules check` and `rules test` warn of it."""

from __future__ import annotations

from tests.cli import run_ticketd
from tests.desk import build_mail

# The admin added the VIP route at the end, below the catch-all.
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support, vip]}
groups:
  support: {}
  vip: {}
routes:
  - name: tag the web form
    if: {}
    then: {tags: [web]}
    continue: true
  - name: everything else
    then: {group: support}
  - name: vip customers
    if: {from: "@bigcustomer\\\\.com$"}
    then: {group: vip, priority: high}
"""


WARNING = ("{path}:13:5: warning: routes[2]: 'vip customers' never applies: 'everything else' above it (line 11) "
           "has no conditions and no continue: true, so every mail stops there; move this route above it")


def test_rules_check_warns_of_a_route_below_a_catch_all(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    done = run_ticketd("rules", "check", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [WARNING.format(path=path)]
    # As the dry run shows: the VIP customer's mail goes to support.
    mail = tmp_path / "mail.eml"
    mail.write_bytes(build_mail("jo@bigcustomer.com", "Hello.\n", subject="Contract").as_bytes())
    tried = run_ticketd("rules", "test", str(path), str(mail), cwd=tmp_path)
    assert "route: 'everything else' matched because no conditions" in tried.stdout.splitlines()
    assert WARNING.format(path=path) in tried.stderr.splitlines()


def test_a_catch_all_at_the_end_or_going_on_gives_no_warning(tmp_path):
    path = tmp_path / "rules.yaml"
    moved = RULES.replace("  - name: everything else\n    then: {group: support}\n", "") \
        + "  - name: everything else\n    then: {group: support}\n"
    path.write_text(moved)
    done = run_ticketd("rules", "check", str(path), cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
