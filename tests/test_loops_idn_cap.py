"""The hourly cap on automatic mail counts one mailbox once, whichever IDNA form its domain is written in:
`cust@bücher.example` and `cust@xn--bcher-kva.example` are one mailbox (RFC 5890 section 2.3.2.1), and an
auto-responder answering in both spellings got up to twice the cap (PRODUCT.md "Loops and robots")."""

from __future__ import annotations

import pytest

from tests import test_loops_subaddress_cap as subaddress_cap
from tests.sink import outbox_rows, ticket_events
from tests.test_loops_subaddress_cap import CAP, _new_ticket

intake = subaddress_cap.intake   # the same desk: a receiver and the cap at CAP
U_LABEL, A_LABEL = "bücher.example", "xn--bcher-kva.example"


def _capped(app, senders: list[str]) -> None:
    """One new ticket from each sender: the first CAP are acknowledged, the rest suppressed by the cap."""
    ids = [_new_ticket(app, sender, n) for n, sender in enumerate(senders)]
    assert [r["recipient"] for r in outbox_rows(app)] == senders[:CAP]
    for ticket_id in ids[CAP:]:
        [event] = ticket_events(app, ticket_id, "mail_suppressed")
        assert "rate limit" in event["reason"]


@pytest.mark.parametrize("first,second", [(U_LABEL, A_LABEL), (A_LABEL, U_LABEL)])
def test_both_forms_of_a_domain_share_one_cap(intake, first, second):
    app = intake
    _capped(app, [f"cust@{first if n % 2 == 0 else second}" for n in range(2 * CAP)])


def test_subaddresses_in_both_forms_share_the_mailbox_cap(intake):
    app = intake
    _capped(app, [f"cust+{n}@{U_LABEL if n % 2 else A_LABEL}" for n in range(2 * CAP)])


def test_another_domain_keeps_a_cap_of_its_own(intake):
    app = intake
    for n in range(CAP):
        _new_ticket(app, f"cust@{U_LABEL}", n)
    ticket_id = _new_ticket(app, "cust@buecher.example", CAP)
    assert ticket_events(app, ticket_id, "mail_suppressed") == []
