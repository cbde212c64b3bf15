"""A 250 the database could not record at once is recorded when it comes back, not sent again later.

A database cut while the smarthost took its time over the final dot left the
delivered row claimed until the lease ran out, and the sweep sent it again: a
second copy of the same mail in the customer's mailbox.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from outbound.delivery import deliver, sweep_outbox
from tests.sink import customer_mail, outbox_rows, receive
from tests.tcpproxy import TcpProxy
from tests.test_outbound import NO_AGENTS, _app
from tests.waiting import eventually


def test_a_250_is_recorded_once_the_database_is_back(make_app, postgres_url, sink):
    target = urlsplit(postgres_url)
    proxy = TcpProxy(target.hostname, target.port or 5432).start()
    try:
        url = postgres_url.replace(target.netloc, f"{target.username or 'postgres'}@127.0.0.1:{proxy.port}", 1)
        app = _app(make_app, url, sink, rules=NO_AGENTS)
        app.enqueue = lambda name, args: True
        receive(app, customer_mail())
        [row] = outbox_rows(app)
        sink.data_delay = 1.0     # the smarthost scans the mail before its 250
        outcome = []
        job = threading.Thread(target=lambda: outcome.append(deliver(app, row["id"])))
        job.start()
        assert eventually(lambda: sink.data_started == 1)
        proxy.cut()               # the database is gone as the 250 comes
        threading.Timer(2.5, proxy.restore).start()
        job.join(timeout=30)
        assert outcome == ["sent"]
        [row] = outbox_rows(app)
        assert (row["state"], row["attempts"]) == ("sent", 1)
        assert sweep_outbox(app) == [] and len(sink.messages) == 1
    finally:
        proxy.cut()
