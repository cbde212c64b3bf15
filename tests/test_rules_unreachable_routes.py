"""A route below one that matches every mail and stops never applies: `rules check` and `rules test` warn of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.desk import build_mail

ROOT = Path(__file__).resolve().parents[1]

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


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The real `ticketd ARGS`, without a daemon config, in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETD_")}
    return subprocess.run([sys.executable, "-m", "ticketd.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)


WARNING = ("{path}:13:5: warning: routes[2]: 'vip customers' never applies: 'everything else' above it (line 11) "
           "has no conditions and no continue: true, so every mail stops there; move this route above it")


def test_rules_check_warns_of_a_route_below_a_catch_all(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    done = _cli("rules", "check", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [WARNING.format(path=path)]
    # As the dry run shows: the VIP customer's mail goes to support.
    mail = tmp_path / "mail.eml"
    mail.write_bytes(build_mail("jo@bigcustomer.com", "Hello.\n", subject="Contract").as_bytes())
    tried = _cli("rules", "test", str(path), str(mail))
    assert "route: 'everything else' matched because no conditions" in tried.stdout.splitlines()
    assert WARNING.format(path=path) in tried.stderr.splitlines()


def test_a_catch_all_at_the_end_or_going_on_gives_no_warning(tmp_path):
    path = tmp_path / "rules.yaml"
    moved = RULES.replace("  - name: everything else\n    then: {group: support}\n", "") \
        + "  - name: everything else\n    then: {group: support}\n"
    path.write_text(moved)
    done = _cli("rules", "check", str(path))
    assert done.returncode == 0 and done.stderr == "", done.stderr
