"""What an incoming mail does to its ticket: open one, or follow up on one.

Called inside the pipeline's transaction; returns the notices to send and
the jobs to enqueue after commit. Lifecycle decisions come from
ticketd.domain; this module reads and writes through ticketd.store.

A follow-up goes to ticketd.agent_mail when the agent checks pass and to
ticketd.customer_mail otherwise; a like/dislike click goes to
ticketd.reactions. The decisions worth knowing (issue 4) are written next
to their code in those modules.
"""

from __future__ import annotations

from dataclasses import replace
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import TYPE_CHECKING

from ticketd.agent_mail import agent_verdict, apply_agent_mail
from ticketd.app import App
from ticketd.assignment import assign_in_tx, why_not_now
from ticketd.copies import KeptCopy
from ticketd.customer_mail import add_followers, apply_customer_mail
from ticketd.domain.lifecycle import parse_key_facts
from ticketd.domain.notices import AUTO_REPLIED, Notice
from ticketd.domain.own_list import relaying_list
from ticketd.domain.requester import requester_of_mail, why_written_to, written_to
from ticketd.domain.rules import MailFacts
from ticketd.domain.statuses import Status
from ticketd.domain.tags import TAG_RE, shortened, strip_prefixes
from ticketd.reactions import record_reactions
from ticketd.store import tickets as store
from ticketd.ticket_changes import Decision, is_ours, mail_ref, set_status, store_message, written_from_our_address
from ticketd.timers import on_ticket_opened

if TYPE_CHECKING:
    from ticketd.pipeline import IncomingMail

__all__ = ["Decision", "agent_verdict", "apply_followup", "mail_facts", "open_ticket", "own_copy_after_list"]


def mail_facts(mail: IncomingMail) -> MailFacts:
    p = mail.parsed
    return MailFacts(from_addr=p.author or "", to=", ".join(p.to), cc=", ".join(p.cc), subject=p.subject,
                     body=p.text, headers=p.header_values)


def _new_subject(subject: str) -> str:
    # A tag of another ticket in a new ticket's subject would be misleading on
    # every later mail ("[#2] [#1] ...") and names a ticket this sender is not
    # part of (PRODUCT.md, Threading): it is dropped.
    # A subject of pages (20,000 characters were seen) would be every mail's Subject and acknowledgement
    # text: the ticket keeps its start, the message the whole.
    return shortened(" ".join(strip_prefixes(TAG_RE.sub(" ", subject or "")).split())) or "(no subject)"


def open_ticket(conn, app: App, mail: IncomingMail, now) -> Decision:
    """A new conversation: create the ticket in `new`, route it, acknowledge it (or close it, if a route says so)."""
    if mail.reactions and (reacted := record_reactions(conn, app, mail, now)) is not None:
        return reacted  # a like/dislike click opens nothing
    p = mail.parsed
    # PRODUCT.md "Key facts": lines at the top of the first mail; routes see the type.
    facts = parse_key_facts(mail.text)
    route = app.rules.route(replace(mail_facts(mail), type=facts.values.get("type", "")))

    def not_a_customer(address: str) -> bool:
        return is_ours(app, address) or app.rules.agent(address) is not None

    customer = requester_of_mail(p, mail.envelope_from, use_reply_to=route.requester == "reply_to",
                                 not_a_customer=not_a_customer)
    ours = written_from_our_address(mail) and not customer.from_reply_to
    if ours:
        customer = written_to(p.to + p.cc, p.recipient_names, not_a_customer)
    requester = customer.address   # "": the mail named no address to answer (ticketd.domain.requester)
    actor = requester or "system:intake"
    opened = store.create_ticket_row(
        conn, subject=_new_subject(p.subject), status=Status.NEW.value,
        priority=route.priority or "normal", type=route.type or facts.values.get("type"),
        source=facts.values.get("source"), scale=facts.values.get("scale"),
        reproducible=facts.values.get("reproducible"), requester=requester,
        requester_name=customer.name, group_name=route.group, assignee=None,
        suppress_ack=route.suppress_ack, created_at=now, updated_at=now,
    )
    ticket_id = opened["id"]
    if requester:   # no address, no participant: nothing public is ever addressed to one
        store.add_participant(conn, ticket_id, requester, "requester", customer.name, now)
    row_id = store_message(conn, app, mail, ticket_id, now, author_role="customer")
    # The new ticket's events are written together, in this order (store.add_events): "created" and
    # "routed" each took a round trip on PostgreSQL, two of the 14 statements a new mail took
    # (tests/test_statements_per_mail.py; bench/drain.py counted 12.5 a mail).
    history = [store.event_row(ticket_id, now, actor, "created", to_value=Status.NEW.value,
                               reason=f"new conversation; {mail_ref(mail)}", message_row_id=row_id)]
    if ours:
        history.append(store.event_row(ticket_id, now, "system:intake", "requester", from_value=p.author,
                                       to_value=requester or None, message_row_id=row_id,
                                       reason=why_written_to(p.author, requester) + f"; {mail_ref(mail)}"))
    elif (why := customer.why()) is not None:
        history.append(store.event_row(ticket_id, now, "system:intake", "requester", from_value=p.author,
                                       to_value=requester or None, message_row_id=row_id,
                                       reason=f"{why}; {mail_ref(mail)}"))
    if customer.from_reply_to:
        history.append(store.event_row(ticket_id, now, "system:rules", "requester", from_value=p.author,
                                       to_value=requester, message_row_id=row_id, rules_hash=app.rules.digest,
                                       reason="Reply-To of a contact form's mail (requester: reply_to), route "
                                       + ", ".join(repr(r) for r in route.routes)))
    # An auto-generated mail ("Loops and robots") is stored but brings in no
    # one, so a robot's Cc list never gets the ticket's public replies.
    if mail.robot_reason is None or ours:
        _join_copied(conn, app, mail, ticket_id, requester, now, ours=ours, actor=actor, row_id=row_id,
                     history=history)
    if facts.values or facts.ignored:
        history.append(store.event_row(
            ticket_id, now, actor, "key_facts", message_row_id=row_id,
            to_value="; ".join(f"{k}={v}" for k, v in facts.values.items()) or None,
            reason=f"key facts at the top of {mail_ref(mail)}" + (
                f"; not understood: {' | '.join(facts.ignored)}" if facts.ignored else "")))
    by_routes = "routes: " + ", ".join(route.routes)
    if route.routes:
        history.append(store.event_row(ticket_id, now, "system:rules", "routed", to_value=route.group,
                                       reason=by_routes, rules_hash=app.rules.digest))
        # PRODUCT.md: every change is an event, from what to what and by which
        # rule; what a route sets differs from what the mail alone would have.
        for name, value, unrouted in (("priority", route.priority, "normal"),
                                      ("type", route.type, facts.values.get("type"))):
            if value is not None and value != unrouted:
                history.append(store.event_row(ticket_id, now, "system:rules", name, from_value=unrouted,
                                               to_value=value, reason=by_routes, rules_hash=app.rules.digest))
    if route.tags:
        store.add_tags(conn, ticket_id, route.tags)
        history.append(store.event_row(ticket_id, now, "system:rules", "tags", to_value=", ".join(route.tags),
                                       reason=by_routes, rules_hash=app.rules.digest))
    if mail.robot_reason:
        history.append(store.event_row(ticket_id, now, "system:loops", "not_answered", reason=mail.robot_reason))
    store.add_events(conn, history)   # before anything below writes an event of its own
    if route.close:
        # `then: {close: true}` (spam, notifications nobody answers): kept and
        # closed, never acknowledged (an answer to a forged sender is
        # backscatter) and never given to an agent. A mail from the sender
        # on it later reopens it like any closed ticket.
        ticket = store.get_ticket(conn, ticket_id)
        set_status(conn, app, ticket, Status.CLOSED, now, actor="system:rules", kind="closed_by_route",
                   reason="closed by route " + ", ".join(repr(r) for r in route.routes)
                   + ": no acknowledgement, no agent", row_id=row_id)
        return Decision(ticket_id)
    # issue 5: timers of `new`; an auto-generated mail is stored as such (customer_waits) and waits for no answer
    on_ticket_opened(conn, app, ticket_id, now, awaits_answer=mail.robot_reason is None)

    # Nothing above changed the row (timers, events, participants): the acknowledgement is composed from it,
    # not read again (a round trip on PostgreSQL, bench/README.md). An assignment below changes it.
    decision = Decision(ticket_id, jobs=[("assign_ticket", (ticket_id,))], ticket_row=opened)
    # `then: {assignee: ...}`; otherwise the rule worker picks from the group. PRODUCT.md: away agents
    # and agents over max_open are skipped; a route's agent who is neither gets the ticket, and one who
    # is leaves it to the route's group (with no group to fall back on, it goes to them all the same).
    unable = why_not_now(conn, app.rules, route.assignee, now) if route.assignee else None
    if route.assignee and unable is not None and route.group:
        store.add_event(conn, ticket_id, now, "system:rules", "route_assignee_skipped", to_value=route.assignee,
                        reason=f"{by_routes} names {route.assignee}, but {unable}: {route.group} assigns it",
                        rules_hash=app.rules.digest)
    elif route.assignee:
        decision.ticket_row = None
        decision.notices.extend(assign_in_tx(conn, app, ticket_id, route.assignee, now, "system:rules"))
    if mail.robot_reason is None and not route.suppress_ack and requester:
        decision.notices.append(Notice(
            template="requester/ticket_opened", recipient=requester, ticket_id=ticket_id,
            auto_submitted=AUTO_REPLIED, in_reply_to=p.message_id, message_row_id=row_id,
        ))
    return decision


def _join_copied(conn, app: App, mail: IncomingMail, ticket_id: int, requester: str, now, *, ours: bool,
                 actor: str, row_id: int, not_following: list[str] = (), history: list[dict] | None = None) -> None:
    """PRODUCT.md: Cc of a customer's mail join as followers, each an event; not those in `not_following`.

    `history`: the caller's events not written yet (store.event_row), written (and emptied) first when
    anyone is to join, so that the history keeps its order.
    """
    p = mail.parsed

    def joins(address: str) -> bool:
        # An agent in Cc is not a follower: followers may accept or reject a
        # solution, which only the customer does, and agents join by assignment.
        return (not is_ours(app, address) and address != requester and app.rules.agent(address) is None
                and address not in not_following)

    # Mail our address wrote for a customer: whom it was written to besides them follow as well.
    copied = [(cc, p.recipient_names.get(cc)) for cc in (p.to + p.cc if ours else p.cc) if joins(cc)]
    co_authors = [(a, None) for a in p.co_authors if joins(a)]
    if history and (copied or co_authors):
        store.add_events(conn, history)
        history.clear()
    add_followers(conn, ticket_id, copied, now, actor=actor, row_id=row_id, reason=f"in Cc of {mail_ref(mail)}",
                  limit=app.settings.max_followers)
    # Several From addresses (RFC 5322 3.6.2): the others wrote it too, and hear the answers.
    add_followers(conn, ticket_id, co_authors, now, actor=actor, row_id=row_id,
                  reason=f"in From of {mail_ref(mail)} beside {requester}", limit=app.settings.max_followers)


def _the_list(conn, message: dict, addresses: list[str]) -> list[str]:
    """Those of `addresses` that are the list the kept message came through: a list in Cc follows nothing,
    or every public reply would go to its readers."""
    raw = store.raw_bytes(conn, message["raw_mail_id"])
    if raw is None:
        return []
    fields = BytesHeaderParser(policy=compat32).parsebytes(raw)
    return relaying_list({name: str(fields.get(name, "")) for name in ("list-post", "list-id")}, addresses)


def own_copy_after_list(conn, app: App, mail: IncomingMail, kept: KeptCopy, now) -> list[Notice]:
    """The customer's own copy of the mail that opened a ticket, come after the copy a mailing list relayed
    (ticketd.copies): it is no robot's, so what the list's signal withheld follows while the ticket is still
    `new`: its Cc join as followers and the customer is acknowledged. Without it, a customer who wrote to
    support and to a list support is on heard nothing when the list was quicker."""
    if mail.robot_reason is not None:
        return []
    opening = store.get_message(conn, kept.message_row_id)
    ticket = store.lock_ticket(conn, kept.ticket_id)
    if (ticket is None or ticket["status"] != Status.NEW.value or not opening["auto_generated"]
            or opening["author_role"] != "customer" or store.first_message_id(conn, ticket["id"]) != opening["id"]):
        return []
    requester = ticket["requester"]
    # The customer's words, then: threaded under by the acknowledgement and what follows (store.outbox
    # leaves automatic mail out of References).
    store.mark_written_by_person(conn, opening["id"])
    store.add_event(conn, ticket["id"], now, "system:loops", "answerable", message_row_id=opening["id"],
                    reason=f"{mail_ref(mail)} came from {mail.parsed.author} too, not only through a mailing list")
    _join_copied(conn, app, mail, ticket["id"], requester, now, ours=False, actor=requester or "system:intake",
                 row_id=opening["id"], not_following=_the_list(conn, opening, mail.parsed.cc))
    if ticket["suppress_ack"] or not requester:
        return []
    return [Notice(template="requester/ticket_opened", recipient=requester, ticket_id=ticket["id"],
                   auto_submitted=AUTO_REPLIED, in_reply_to=mail.parsed.message_id, message_row_id=opening["id"])]


def apply_followup(conn, app: App, mail: IncomingMail, ticket: dict, now) -> Decision:
    """A reply on an existing ticket (its row, locked by the caller), from its customer side or its agent."""
    if mail.reactions and (reacted := record_reactions(conn, app, mail, now)) is not None:
        return reacted
    verdict = agent_verdict(app, mail, ticket["id"])
    if verdict.agent is not None:
        return apply_agent_mail(conn, app, mail, ticket, verdict, now)
    return apply_customer_mail(conn, app, mail, ticket, verdict, now)
