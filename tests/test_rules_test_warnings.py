"""`ticketd rules test` shows the warnings `ticketd rules check` gives, so an admin trying a mail sees them too."""

from __future__ import annotations

from tests.cli import run_ticketd
from tests.desk import build_mail

# Billing's only agent is away: what the invoices route sends there waits for nobody.
RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support]}
  - {email: carol@example.com, name: Carol, groups: [billing], away: true}
groups:
  support: {}
  billing: {}
routes:
  - name: invoices
    if: {subject: "(?i)invoice"}
    then: {group: billing}
  - name: everything else
    then: {group: support}
"""


def test_rules_test_prints_the_warnings_of_rules_check_and_still_exits_0(tmp_path):
    rules, mail = tmp_path / "rules.yaml", tmp_path / "mail.eml"
    rules.write_text(RULES)
    mail.write_bytes(build_mail("cust@example.org", "Hello,\nthe amount is wrong.\n", subject="Invoice 42").as_bytes())
    check = run_ticketd("rules", "check", str(rules), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    warning = (f"{rules}:10:19: warning: routes[0].then.group: every agent of group 'billing' is away "
               "(carol@example.com), so mail this route sends there waits unassigned until one is back")
    assert warning in check.stderr

    tried = run_ticketd("rules", "test", str(rules), str(mail), cwd=tmp_path)
    assert tried.returncode == 0, tried.stderr
    # The same lines on stderr, where `rules check` puts them; the dry run itself stays on stdout.
    warned = [line for line in tried.stderr.splitlines() if ": warning: " in line]
    assert warned == [line for line in check.stderr.splitlines() if ": warning: " in line]
    assert warning in tried.stderr
    assert "route: 'invoices' matched because subject matches /(?i)invoice/ at 'Invoice'" in tried.stdout
    assert "agent: nobody available, the ticket would wait unassigned" in tried.stdout
    assert "warning" not in tried.stdout


def test_rules_test_of_a_file_without_warnings_prints_none(tmp_path):
    rules, mail = tmp_path / "rules.yaml", tmp_path / "mail.eml"
    rules.write_text(RULES.replace("groups: [billing], away: true", "groups: [billing]"))
    mail.write_bytes(build_mail("cust@example.org", "Hello.\n", subject="Invoice 42").as_bytes())
    tried = run_ticketd("rules", "test", str(rules), str(mail), cwd=tmp_path)
    assert tried.returncode == 0 and tried.stderr == "", tried.stderr
    assert "agent: carol@example.com" in tried.stdout
