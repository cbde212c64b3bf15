"""A mail ticketd has decided to send, before it is rendered (pure data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# RFC 3834 section 5: what our automatic mail says about itself.
AUTO_REPLIED = "auto-replied"      # an automatic answer to a customer's mail
AUTO_GENERATED = "auto-generated"  # a notification nobody asked for directly


@dataclass(frozen=True)
class Notice:
    template: str                  # e.g. "requester/ticket_opened", "agent/ticket_assigned"
    recipient: str
    ticket_id: int | None
    context: Mapping[str, object] = field(default_factory=dict)
    # None for a relayed human reply (an agent's answer is not automatic).
    auto_submitted: str | None = AUTO_GENERATED
    # The agent whose signed reply address goes into Reply-To; None: the
    # recipient is a customer and gets the ticket's public reply address.
    agent_reply_to: str | None = None
    # The mail of an internal note: the agent's reply to it is a note too (RT keeps a reply to a
    # comment a comment), never a public answer quoting the note to the customer.
    reply_as_note: bool = False
    # Shown as From's display name ("Alice via Support").
    from_name: str | None = None
    message_row_id: int | None = None   # the stored message this mail carries, if any
    in_reply_to: str | None = None      # Message-ID this mail answers, for threading
    # Stored messages whose attachments go with this mail, newest first when
    # not all fit (outbound.attachments); never a customer's mail for an internal note.
    attach_from: tuple[int, ...] = ()
    # A person's command sent it (an agent's #close or bare #status, an admin's close): the hourly
    # cap per recipient, which stops mail loops, does not hold it back (a cap of 0 still does).
    by_person: bool = False
    # A wait's warning or closing mail to the customer (ticketd/timers.py): at most two per wait, answering
    # no mail, so the hourly cap does not hold it back either (a cap of 0 still does).
    lifecycle: bool = False


DELIVERY_FAILED = "agent/delivery_failed"


def delivery_failed_notice(assignee: str | None, ticket_id: int, recipient: str, template: str,
                           reason: str) -> Notice | None:
    """The assignee's word that a mail on their ticket failed for good (5xx, retries spent, a bounce).

    None where it would loop or reach nobody: no assignee, a failed mail to
    the assignee themself, or a failure report that failed.
    """
    if not assignee or assignee.lower() == recipient.strip().lower() or template == DELIVERY_FAILED:
        return None
    return Notice(template=DELIVERY_FAILED, recipient=assignee, ticket_id=ticket_id, auto_submitted=AUTO_GENERATED,
                  agent_reply_to=assignee,
                  context={"failed_recipient": recipient, "failed_template": template, "reason": reason})
