"""A ticket left in a group rules.yaml no longer has is routed again by the next sweep, not only by a reload.

A reload routes the open tickets of groups it removed once, right after the
swap (ticketd.rules_watch); a mail routed by the rules before the reload
whose transaction committed just after it landed in the removed group, and
waited there, unassigned, until the next reload or restart. The fault is
injected in the database: the ticket's group is set to one the rules lack.
"""

from __future__ import annotations

from sqlalchemy import update

from tests.conftest import MINIMAL_RULES
from tests.desk import build_mail, open_desk
from ticketd.store.tables import tickets
from workers.sweeps import sweep_once


def test_the_sweep_routes_a_ticket_of_a_lost_group_again_and_gives_it_out(make_app, db_url):
    desk_gen = open_desk(make_app, db_url, rules=MINIMAL_RULES)
    desk = next(desk_gen)
    try:
        desk.send(build_mail("cust@example.org", "It is on fire.\n"))
        ticket_id = desk.ticket()["id"]
        with desk.app.engine.begin() as conn:
            conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(group_name="helpdesk",
                                                                                 assignee=None))

        sweep_once(desk.app, asked=True)

        ticket = desk.ticket(ticket_id)
        assert ticket["group_name"] == "support"
        [moved] = desk.events(ticket_id, "group")
        assert (moved["from_value"], moved["to_value"]) == ("helpdesk", "support")
        assert ticket["assignee"] in ("alice@example.com", "bob@example.com")
        sweep_once(desk.app, asked=True)
        assert len(desk.events(ticket_id, "group")) == 1   # once routed again, nothing more to do
    finally:
        desk_gen.close()
