"""dramatiq actors, one line each, calling a plain handle function with an App.

Actors are declared per broker (not at import on a global one), so the
embedded daemon, `ticketd worker` and the tests each bind their own.
Messages carry ids, never objects; every handler is idempotent because
dramatiq delivers at least once.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq import Broker

from outbound.delivery import deliver
from ticketd.app import App
from ticketd.assignment import assign
from workers.database_health import DatabaseHealth

QUEUE = "ticketd"


class StopSignal(dramatiq.Middleware):
    """Set while the broker's worker is shutting down, so that a delivery batch stops between mails.

    dramatiq's stop waits for the message in hand to finish; a batch of
    slow mails would keep a stopping worker for minutes and, once the stop
    gives up, leave its rows claimed until the claim expires.
    """

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def before_worker_boot(self, broker: Broker, worker) -> None:
        self.stopping.clear()

    def before_worker_shutdown(self, broker: Broker, worker) -> None:
        self.stopping.set()


def declare_actors(broker: Broker, app: App, database: DatabaseHealth) -> dict[str, dramatiq.Actor]:
    stop = StopSignal()
    broker.add_middleware(stop)

    def send_mail(outbox_id: int) -> None:
        with database.job(f"the mail of outbox row {outbox_id}"):
            deliver(app, outbox_id, stop.stopping)

    def assign_ticket(ticket_id: int) -> None:
        with database.job(f"the assignment of ticket {ticket_id}"):
            assign(app, ticket_id)

    options = dict(broker=broker, queue_name=QUEUE, max_retries=0)
    return {
        "send_mail": dramatiq.actor(send_mail, actor_name="send_mail", **options),
        "assign_ticket": dramatiq.actor(assign_ticket, actor_name="assign_ticket", **options),
    }
