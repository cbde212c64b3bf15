"""A customer-side reply: followers, acceptance or rejection, reopening, rating, the assignee told.

Decision worth knowing (issue 4): a mail whose From is an agent but that
fails the agent checks is stored as customer-side mail and shown to the
assignee; it changes nothing (no command, no acceptance, no reopening) and
joins nobody as a follower. Unless that agent is one of the ticket's
customers, they are told it went nowhere and why (agent/mail_not_applied,
with their own reply address): otherwise they believe the customer has
their answer, and a forged From shows up in the real agent's inbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ticketd.app import App
from ticketd.assignment import release_if_departed
from ticketd.domain.authority import Verdict
from ticketd.domain.following import followers_joining, left_out_reason
from ticketd.domain.lifecycle import CustomerEffect, answer_line, customer_reply_effect
from ticketd.domain.loops import LIST_REASON
from ticketd.domain.notices import AUTO_GENERATED, AUTO_REPLIED, Notice
from ticketd.domain.statuses import Status
from ticketd.store import tickets as store
from ticketd.store.bounces import unmark_bounced
from ticketd.ticket_changes import Decision, is_ours, mail_ref, set_status, store_message, written_from_our_address
from ticketd.timers import start_response_clock

if TYPE_CHECKING:
    from ticketd.pipeline import IncomingMail


def add_followers(conn, ticket_id: int, addresses: list[tuple[str, str | None]], now, *, actor: str,
                  reason: str, row_id: int | None, limit: int | None = None) -> bool:
    """Join (address, name) pairs as followers; an event for each one that was not on the ticket yet.

    PRODUCT.md: "Every change is an event in the ticket's history"; someone
    already a participant (requester, follower, agent) is no change. Mail
    passes `limit` (settings.max_followers): those past it do not join, and
    one event names them. True if every address is on the ticket now.
    """
    if not addresses:
        return True     # most mail copies no one: no read of the ticket's people on intake's path
    on_ticket = {p["email"]: p["role"] for p in store.participants_of(conn, ticket_id)}
    joining = followers_joining(addresses, on_ticket, limit)
    for address, name in joining.join:
        store.add_participant(conn, ticket_id, address, "follower", name, now)
        store.add_event(conn, ticket_id, now, actor, "follower_added", to_value=address.lower(),
                        reason=reason, message_row_id=row_id)
    if joining.left_out:
        store.add_event(conn, ticket_id, now, actor, "followers_limited", to_value=str(len(joining.left_out)),
                        reason=left_out_reason(joining.left_out, limit, reason), message_row_id=row_id)
    return not joining.left_out


def apply_customer_mail(conn, app: App, mail: IncomingMail, ticket: dict, verdict: Verdict, now) -> Decision:
    """A reply from the ticket's customer side (any mail on the ticket that is not agent mail)."""
    p = mail.parsed
    ticket_id = ticket["id"]
    # PRODUCT.md: a mail that fails the agent checks is an ordinary customer
    # mail, its #commands are text. It acts on the ticket only from the
    # ticket's own customers: an agent who wrote to support is the requester
    # there and may accept or reopen; an agent's From on someone else's
    # ticket is stored and shown to the assignee, and changes nothing.
    decision = Decision(ticket_id)
    ref = mail_ref(mail)
    claims_agent = app.rules.agent(p.author) is not None
    # Threaded by what anyone may know, From our mail server did not vouch for names no one: the
    # mail is kept as a stranger's (ticketd.customer_auth).
    # Their bounce mark comes with the role: one round trip, not two (bench/README.md, 0.3 ms each on PostgreSQL).
    known_as, bounced_at = store.participant_standing(conn, ticket_id, p.author) if p.author else (None, None)
    role = known_as if mail.unvouched is None else None
    row_id = store_message(conn, app, mail, ticket_id, now, author_role="customer")
    who = p.author or "unknown"
    if mail.robot_reason is not None:
        # An out-of-office or other automatic mail ("Loops and robots") is kept and changes nothing:
        # it is no reply (a waiting ticket still closes for want of one), joins nobody, tells the
        # assignee nothing (but a person's mail from our own address) and, like an agent's
        # (`not_relayed`), leaves `updated_at` alone.
        store.add_event(conn, ticket_id, now, who, "automatic_mail", message_row_id=row_id,
                        reason=f"automatic mail ({mail.robot_reason}), changes nothing; {ref} by {mail.matched_by}")
        assignee = _assignee_to_tell(app, ticket, p.author)
        if assignee and written_from_our_address(mail):
            # A person in our shared mailbox (webmail) answered on the ticket, the customer in To: the
            # customer has read it, so the assignee must too, or answer them as if it had never been said.
            decision.notices.append(assignee_told(
                assignee, ticket_id, mail, row_id=row_id,
                text=f"[written from our own address {p.author}: kept on the ticket, it changes nothing, and "
                     f"ticketd sent it to no one]\n\n{mail.text}"))
        elif assignee and mail.robot_reason == LIST_REASON:
            # A person's words relayed by a list (a customer answering through a Google Group): nothing
            # automatic goes back to the list's readers, but the assignee reads them, or a waiting ticket
            # would be reminded and closed over an answer nobody saw.
            decision.notices.append(assignee_told(
                assignee, ticket_id, mail, row_id=row_id,
                text=f"[sent through a mailing list: kept on the ticket; mail a list relays changes nothing by "
                     f"itself (status {ticket['status']} stays) and gets no automatic answer, so set the status "
                     f"yourself if it answers what you asked]\n\n{mail.text}"))
        return decision
    store.add_event(conn, ticket_id, now, who, "customer_replied", message_row_id=row_id,
                    reason=f"{ref} by {mail.matched_by}" + (f"; not agent mail: {verdict.reason}"
                                                           if claims_agent else ""))
    # PRODUCT.md: followers come from a customer's mail (never an automatic one: an auto-reply joining,
    # or pulling in its Cc, would get every public reply and answer it in turn).
    if role is not None and bounced_at is not None:
        # Their own mail shows the address works again (a full mailbox
        # emptied, a typo'd alias fixed): they get the ticket's mail again.
        unmark_bounced(conn, ticket_id, p.author)
        store.add_event(conn, ticket_id, now, who, "bounce_cleared", to_value=p.author,
                        reason=f"bounced at {bounced_at:%Y-%m-%d %H:%M} UTC; then wrote {ref}",
                        message_row_id=row_id)
    # Threaded only by the Message-ID of a mail we received (a list's reader, someone a copy was
    # forwarded to), or through an agent's own reply address (an agent's notice forwarded to a vendor),
    # a sender nobody put on the ticket proves no part in it: their mail is kept and shown to the
    # assignee, and neither they nor their Cc join it (they would get every public reply).
    came_by = _outsider_way(mail)
    outsider = (known_as is None and came_by is not None and bool(p.author)
                and not store.was_addressed(conn, ticket_id, p.author, except_row=row_id))
    # Set only for a match by a received Message-ID or a copy (ticketd.pipeline.find_thread), so came_by says how.
    unproven = mail.unvouched is not None and not outsider
    # Someone an agent or admin took off the followers (#unfollow) does not put themselves back by
    # writing again through the customers' reply address, which every copy they had carries.
    removed = (store.taken_off(conn, ticket_id, p.author)
               if p.author and role is None and not (outsider or unproven) else None)
    if outsider:
        store.add_event(conn, ticket_id, now, who, "outsider_kept", message_row_id=row_id,
                        reason=f"the sender is on no mail of this ticket and wrote {came_by}: kept, joins "
                               f"no one, changes nothing; {ref}")
    elif unproven:
        store.add_event(conn, ticket_id, now, who, "unvouched_kept", message_row_id=row_id,
                        reason=f"{mail.unvouched}, and the mail came {came_by}: kept, joins no one, changes "
                               f"nothing (customer_auth); {ref}")
    elif removed is not None:
        store.add_event(conn, ticket_id, now, who, "outsider_kept", message_row_id=row_id,
                        reason=f"{p.author} was taken off the ticket's followers by {removed.actor}: kept, joins "
                               f"no one, changes nothing; {ref}")
    elif p.author and role is None and not claims_agent and not is_ours(app, p.author):
        if add_followers(conn, ticket_id, [(p.author, p.from_name)], now, actor=who, row_id=row_id,
                         reason=f"wrote to the ticket; {ref} by {mail.matched_by}", limit=app.settings.max_followers):
            role = "follower"
    elif role == "follower" and p.from_name:
        # The name on their own mail wins over the one a Cc gave them: it greets them from now on.
        store.name_participant(conn, ticket_id, p.author, p.from_name)
    if role in ("requester", "follower"):
        # Only whom the ticket has (or who joined by writing) brings their Cc: another's mail, an agent's
        # From on a mail that failed the agent checks (forged, or from their own mailbox) included,
        # would make anyone they name a recipient of every public reply.
        copied = [(cc, p.recipient_names.get(cc)) for cc in p.cc
                  if not is_ours(app, cc) and app.rules.agent(cc) is None]
        add_followers(conn, ticket_id, copied, now, actor=who, row_id=row_id, reason=f"in Cc of {ref}",
                      limit=app.settings.max_followers)

    acts = role in ("requester", "follower")
    own_text = "" if mail.quoted_only else mail.text
    effect = customer_reply_effect(Status(ticket["status"]), own_text, app.settings.accept_words,
                                   by_requester=role == "requester", has_files=bool(_files_sent(mail))) if acts \
        else CustomerEffect("none")
    notify_text = mail.text
    if outsider:
        notify_text = (f"[{p.author} is on no mail of this ticket and wrote {came_by}: kept here; they do not "
                       f"follow the ticket and their mail changes nothing]\n\n{mail.text}")
    elif unproven:
        notify_text = (f"[our mail server did not vouch for this mail's From ({mail.unvouched}), and it came "
                       f"{came_by}: kept here; it changes nothing and its Cc do not "
                       f"follow the ticket. If {p.author} wrote it, answer or set the status yourself]"
                       f"\n\n{mail.text}")
    elif removed is not None:
        notify_text = (f"[{p.author} was taken off this ticket's followers by {removed.actor} and wrote again: "
                       f"kept here; they do not follow it again and their mail changes nothing (#follow "
                       f"{p.author} would put them back)]\n\n{mail.text}")
    if effect.unchanged_because:
        notify_text = _unchanged(conn, ticket, effect, mail.text, who=who, ref=ref, row_id=row_id, now=now)
    if effect.ask_again:
        # RFC 3834: an answer to their mail, automatic; the hourly cap per recipient stops a loop.
        decision.notices.append(Notice(
            template="requester/rating_not_counted", recipient=ticket["requester"], ticket_id=ticket_id,
            context={"rating": " ".join(map(str, effect.rating or ()))}, auto_submitted=AUTO_REPLIED,
            in_reply_to=p.message_id))
    if effect.kind == "accepted":
        answer = answer_line(own_text, app.settings.accept_words)[:80]
        set_status(conn, app, ticket, Status.CLOSED, now, actor=who, kind="accepted",
                   reason=f"proposed solution accepted ({answer!r}); {ref}", row_id=row_id)
        context = {"reason": "you accepted the proposed solution", "closed_by": "customer"}
        rated = ""
        if effect.rating is not None:
            # Rated with the acceptance: stored as a rating to the closing mail would be, and that mail
            # thanks for the numbers (`rating`) instead of asking for them again.
            _rate(conn, ticket_id, p.from_addr or who, effect.rating, who, ref, row_id, now)
            context["rating"] = " ".join(map(str, effect.rating))
            rated = f" and rated it {context['rating']}"
        decision.notices.append(Notice(
            template="requester/ticket_closed", recipient=ticket["requester"], ticket_id=ticket_id,
            context=context, in_reply_to=p.message_id,
        ))
        notify_text = f"[accepted the proposed solution{rated}; the ticket is closed]\n\n{mail.text}"
    elif effect.kind == "rejected":
        said = own_text.strip()[:1000] or f"(no text; {len(_files_sent(mail))} file(s))"
        set_status(conn, app, ticket, Status.OPEN, now, actor=who, kind="rejected",
                   reason=f"proposed solution rejected: {said}; {ref}", row_id=row_id)
        notify_text = f"[rejected the proposed solution; the ticket is open again]\n\n{mail.text}"
    elif effect.kind == "objected":
        said = own_text.strip()[:1000] or f"(no text; {len(_files_sent(mail))} file(s))"
        set_status(conn, app, ticket, Status.OPEN, now, actor=who, kind="status",
                   reason=f"a follower replied to the proposed solution (only the requester accepts or rejects "
                          f"it): {said}; {ref}", row_id=row_id)
        notify_text = (f"[a follower replied to the proposed solution, which only the requester accepts or rejects; "
                       f"the ticket is open again]\n\n{mail.text}")
    elif effect.kind == "reopened":
        if ticket["status"] == Status.CLOSED.value:
            notify_text = f"[the ticket was closed; this reply opened it again]\n\n{mail.text}"
        set_status(conn, app, ticket, Status.OPEN, now, actor=who,
                   kind="reopened" if ticket["status"] == Status.CLOSED.value else "status",
                   reason=f"customer replied; {ref}", row_id=row_id)
    elif effect.kind == "rated":
        _rate(conn, ticket_id, p.from_addr or who, effect.rating, who, ref, row_id, now)
        if not effect.signed_at_length:
            return decision
        notify_text = (f"[rated the ticket {' '.join(map(str, effect.rating))}; it stays closed: the lines under "
                       f"the numbers were read as a signature]\n\n{mail.text}")
    else:
        # As for a robot's mail: what changes nothing leaves updated_at alone.
        if not (outsider or unproven) and removed is None:
            store.update_ticket(conn, ticket_id, now)
        if acts and ticket["status"] != Status.CLOSED.value:   # a new question: the respond clock runs again
            start_response_clock(conn, app, ticket_id, ticket["status"], now)
    if ticket["status"] != Status.CLOSED.value and release_if_departed(conn, app, ticket, now):
        # A reopened (or rejected) ticket of an agent since removed from rules.yaml: the group's next
        # agent gets it now, as a new ticket's, and reads this mail in that notice (docs/rules.md).
        decision.jobs.append(("assign_ticket", (ticket_id,)))
    misled = _misled_agent(app, mail, verdict, role, ticket_id)
    if misled is not None:
        decision.notices.append(misled)
    assignee = _assignee_to_tell(app, ticket, p.author)
    if assignee and (misled is None or misled.recipient != assignee):
        decision.notices.append(assignee_told(assignee, ticket_id, mail, notify_text, row_id))
    return decision


def _assignee_to_tell(app: App, ticket: dict, author: str | None) -> str | None:
    """The ticket's assignee if they are still an agent of rules.yaml and did not write the mail, else None."""
    # A closed ticket keeps a former agent for its history; their mailbox gets no customer's words (docs/rules.md).
    assignee = ticket["assignee"]
    if not assignee or app.rules.agent(assignee) is None:
        return None
    # An agent asking on their own ticket has their words already. Echoed back, a forwarding rule of their
    # mailbox sent them to support again, each echoed again, for ever (PRODUCT.md "Loops and robots").
    return None if author and author.lower() == assignee.lower() else assignee


def _outsider_way(mail: IncomingMail) -> str | None:
    """How the mail reached the ticket, when that proves no part in it; None when it does."""
    if mail.by_received_id:
        return "by the Message-ID of a mail we received, which others may know"
    if mail.matched_by == "message_id":
        return "as another copy of a mail we received (its Message-ID and From), which others may know"
    address = mail.reply_address
    if mail.matched_by == "reply_address" and address is not None and address.agent_fingerprint:
        return "through an agent's own reply address, which only our mail to that agent carries"
    return None


def _rate(conn, ticket_id: int, rater: str, rating: tuple[int, int, int], who: str, ref: str, row_id: int,
          now) -> None:
    """The requester's rating: stored in place of their earlier one, the history saying from what to what."""
    before = store.replace_rating(conn, ticket_id, rater, *rating, row_id, now)
    said = " ".join(map(str, rating))
    earlier = " ".join(map(str, before)) if before else None
    store.add_event(conn, ticket_id, now, who, "rated", from_value=earlier, to_value=said, message_row_id=row_id,
                    reason=(f"replaced the earlier rating {earlier} by {said}; " if earlier else "")
                    + f"usefulness, speed, politeness; {ref}")
    store.update_ticket(conn, ticket_id, now)


def _unchanged(conn, ticket: dict, effect: CustomerEffect, text: str, *, who: str, ref: str, row_id: int,
               now) -> str:
    """A reply that left the ticket as it was: the event saying why; the text the assignee gets, with why."""
    because = effect.unchanged_because
    if effect.rating is not None:
        store.add_event(conn, ticket["id"], now, who, "rating_not_counted", to_value=" ".join(map(str, effect.rating)),
                        reason=f"{because}; {ref}", message_row_id=row_id)
    else:
        store.add_event(conn, ticket["id"], now, who, "unchanged", from_value=ticket["status"],
                        reason=f"{because}; {ref}", message_row_id=row_id)
    stands = ("the ticket stays closed" if ticket["status"] == Status.CLOSED.value
              else "the proposed solution stands")
    return f"[{stands}: {because}]\n\n{text}"


def _misled_agent(app: App, mail: IncomingMail, verdict: Verdict, role: str | None,
                  ticket_id: int) -> Notice | None:
    """agent/mail_not_applied for an agent whose mail failed the agent checks, unless they wrote as a customer."""
    p = mail.parsed
    agent = app.rules.agent(p.author) if p.author else None
    if agent is None or verdict.advice is None or role in ("requester", "follower"):
        return None
    return Notice(
        template="agent/mail_not_applied", recipient=agent.email, ticket_id=ticket_id,
        auto_submitted=AUTO_REPLIED, agent_reply_to=agent.email, in_reply_to=p.message_id,
        context={"reason": verdict.advice, "text": mail.text, "agent_name": agent.name},
    )


def _files_sent(mail: IncomingMail) -> list[dict]:
    """The files a mail carries, without the inline images of a signature (a logo is no reply)."""
    return [a for a in mail.attachments if not a.get("inline")]


def _shown_name(name: str | None, address: str | None) -> str:
    """The sender's name for the assignee, unless it is another address: `"bob@our-team.example"
    <eve@evil.example>` read as a colleague's mail ("bob@our-team.example <eve@...> wrote")."""
    if not name or ("@" in name and name.strip().strip("\"'<>").lower() != (address or "").lower()):
        return ""
    return name


def assignee_told(assignee: str, ticket_id: int, mail: IncomingMail, text: str, row_id: int) -> Notice:
    """agent/customer_replied: what a customer-side mail (stored as `row_id`) said, and who wrote it."""
    p = mail.parsed
    return Notice(
        template="agent/customer_replied", recipient=assignee, ticket_id=ticket_id,
        auto_submitted=AUTO_GENERATED, agent_reply_to=assignee,
        context={"text": text, "sender": p.author or "", "sender_name": _shown_name(p.from_name, p.author)},
        message_row_id=row_id, in_reply_to=p.message_id, attach_from=(row_id,) if mail.attachments else (),
    )
