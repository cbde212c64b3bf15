"""A pattern written as a `|` or `>` block keeps its final line break, and so never matches: refused, located."""

from __future__ import annotations

from tests.cli import run_ticketd
from tests.desk import build_mail

HEAD = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support, billing]}
groups:
  support: {}
  billing: {}
routes:
"""

# The block's line break is part of the pattern: `(?i)invoice\n` is in no subject.
BLOCK = HEAD + """\
  - name: invoices
    if:
      subject: |
        (?i)invoice
      from:
        - '@partner\\.example$'
        - >
          @bigcustomer\\.com$
    then: {group: billing}
  - name: everything else
    then: {group: support}
"""


def test_rules_check_refuses_a_pattern_ending_in_a_line_break_naming_its_line(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(BLOCK)
    done = run_ticketd("rules", "check", str(rules), cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    errors = done.stderr.splitlines()
    assert errors[0].startswith(f"{rules}:9:16: routes[0].if.subject: '(?i)invoice\\n' ends with a line break"), \
        errors
    assert "write |- (or >-)" in errors[0]
    assert errors[1].startswith(f"{rules}:13:11: routes[0].if.from[1]: '@bigcustomer\\\\.com$\\n' ends with a "
                                "line break"), errors
    assert errors[2] == f"{rules}: 2 error(s); nothing would be applied"
    # `rules test` refuses the file as the daemon would, rather than show a route that never matches.
    mail = tmp_path / "mail.eml"
    mail.write_bytes(build_mail("cust@example.org", "Hello.\n", subject="Invoice 42").as_bytes())
    tried = run_ticketd("rules", "test", str(rules), str(mail), cwd=tmp_path)
    assert tried.returncode == 1 and "routes[0].if.subject: '(?i)invoice\\n' ends with a line break" in tried.stderr


def test_a_block_that_strips_its_line_break_is_a_pattern_like_any_other(tmp_path):
    rules, mail = tmp_path / "rules.yaml", tmp_path / "mail.eml"
    rules.write_text(BLOCK.replace("subject: |", "subject: |-").replace("- >", "- >-"))
    assert run_ticketd("rules", "check", str(rules), cwd=tmp_path).returncode == 0
    mail.write_bytes(build_mail("jo@bigcustomer.com", "Hello.\n", subject="Invoice 42").as_bytes())
    tried = run_ticketd("rules", "test", str(rules), str(mail), cwd=tmp_path)
    assert tried.returncode == 0, tried.stderr
    assert "route: 'invoices' matched because subject matches /(?i)invoice/ at 'Invoice'; from matches " \
           "/@bigcustomer\\.com$/ at '@bigcustomer.com'" in tried.stdout.splitlines(), tried.stdout
