"""A follower's objection to a proposed solution moves the ticket back to `open`, with the reason.

PRODUCT.md "The lifecycle": a customer reply to a ticket in
`solution_proposed` that is not an acceptance moves it back to `open`,
recording the reason. Only the requester accepts (a Cc'd colleague's "ok"
closes nothing), but a colleague's "it still burns" is a customer reply that
is no acceptance: left in `solution_proposed` with its reminder and close
stopped, the ticket had no timer at all and sat there for ever; `open` runs
its respond clock like any customer reply waiting for the desk.
"""

from __future__ import annotations

from tests.desk import open_desk
from tests.test_timers import rules
from tests.test_timers_follower_on_proposal import COLLEAGUE, _kinds, _proposed


def _rules() -> str:
    return rules(respond="1d").replace("  in_development:", "  solution_proposed: {warn_after: 3d, close_after: 4d}\n"
                                                            "  in_development:")


def test_a_followers_objection_opens_the_ticket_with_its_reason_and_a_respond_clock(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=_rules())
    desk = next(desk_gen)
    try:
        tid, agent = _proposed(desk)
        desk.reply_to(desk.last(COLLEAGUE), COLLEAGUE, "It is still burning here.\n")
        assert desk.ticket(tid)["status"] == "open"
        [moved] = [e for e in desk.events(tid, "status") if e["to_value"] == "open"]
        assert moved["from_value"] == "solution_proposed" and moved["actor"] == COLLEAGUE
        assert "It is still burning here." in moved["reason"] and "follower" in moved["reason"]
        assert desk.events(tid, "accepted") == [] and desk.events(tid, "rejected") == []
        assert _kinds(desk.app, tid) == {"respond"}    # open's clock, no reminder or close of the proposal
        told = desk.last(agent).get_body(("plain",)).get_content()
        assert "It is still burning here." in told and "open again" in told
    finally:
        desk_gen.close()


def test_a_followers_thanks_leave_the_proposal_and_its_wait_standing(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=_rules())
    desk = next(desk_gen)
    try:
        tid, _ = _proposed(desk)
        desk.reply_to(desk.last(COLLEAGUE), COLLEAGUE, "OK, thanks!\n")
        assert desk.ticket(tid)["status"] == "solution_proposed"
        assert desk.events(tid, "accepted") == []
        assert {"warn", "close"} <= _kinds(desk.app, tid)
    finally:
        desk_gen.close()
