"""dramatiq actors, one line each, calling a plain handle function with an App.

Actors are declared per broker (not at import on a global one), so the
embedded daemon, `ticketd worker` and the tests each bind their own.
Messages carry ids, never objects; every handler is idempotent because
dramatiq delivers at least once.
"""

from __future__ import annotations

import dramatiq
from dramatiq import Broker

from outbound.delivery import deliver
from ticketd.app import App
from ticketd.assignment import assign

QUEUE = "ticketd"


def declare_actors(broker: Broker, app: App) -> dict[str, dramatiq.Actor]:
    def send_mail(outbox_id: int) -> None:
        deliver(app, outbox_id)

    def assign_ticket(ticket_id: int) -> None:
        assign(app, ticket_id)

    options = dict(broker=broker, queue_name=QUEUE, max_retries=0)
    return {
        "send_mail": dramatiq.actor(send_mail, actor_name="send_mail", **options),
        "assign_ticket": dramatiq.actor(assign_ticket, actor_name="assign_ticket", **options),
    }
