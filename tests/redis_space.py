"""A namespace of its own on the test Redis (conftest.REDIS_URL) for one test, its keys deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tests.conftest import REDIS_URL


@contextmanager
def redis_namespace(prefix: str = "t") -> Iterator[str]:
    """A fresh `redis_namespace` value: other tests and desks on the same Redis database never see its jobs."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:10]}"
    try:
        yield namespace
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{namespace}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def queued(namespace: str, queue: str = "ticketd") -> int:
    """Jobs waiting in `queue` of `namespace` (dramatiq's list of message ids), not yet taken by a worker."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(client.llen(f"{namespace}:{queue}"))
    finally:
        client.close()
