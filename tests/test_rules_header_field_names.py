"""`header.<Name>` takes any field name RFC 5322 allows, not only letters, digits and hyphens.

Section 3.6.8: a field name is printable US-ASCII but the colon; spam filters
and gateways write `X_Spam_Flag` or `X.Label`, and a rule on them was refused
as an unknown condition.
"""

from __future__ import annotations

from tests.cli import run_ticketd
from tests.desk import build_mail
from tests.test_rules_repeated_headers import _group, _process

RULES = """\
agents:
  - {email: alice@example.com, name: Alice, groups: [support, spam]}
groups:
  support: {assign: round_robin}
  spam: {assign: round_robin}
routes:
  - name: flagged by the gateway
    if: {header.X_Spam_Flag: "(?i)^yes$"}
    then: {group: spam}
  - name: everything else
    then: {group: support}
"""


def _mail(flag: str | None) -> bytes:
    msg = build_mail("cust@example.org", "Hello,\nmy invoice is wrong.\n", subject="Wrong amount")
    if flag is not None:
        msg["X_Spam_Flag"] = flag
    return msg.as_bytes()


def test_rules_check_takes_a_field_name_with_an_underscore(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    done = run_ticketd("rules", "check", str(tmp_path / "rules.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_field_name_with_a_colon_or_a_space_is_still_refused(tmp_path):
    for name in ("X Spam", "X:Spam", "X_Spam_Flag\\n"):   # the last a quoted key ending in a line break
        (tmp_path / "rules.yaml").write_text(RULES.replace("header.X_Spam_Flag", f'"header.{name}"'))
        done = run_ticketd("rules", "check", str(tmp_path / "rules.yaml"), cwd=tmp_path)
        assert done.returncode == 1, (name, done.stdout)


def test_the_daemon_routes_by_a_field_with_an_underscore(make_app, db_url):
    app = make_app(db_url, rules=RULES)
    flagged, clean = _process(app, _mail("YES")), _process(app, _mail(None))
    assert (_group(app, flagged), _group(app, clean)) == ("spam", "support")
