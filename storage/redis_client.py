"""The Redis connection of a process: real Redis, or fakeredis in the embedded mode."""

from __future__ import annotations

from functools import lru_cache

import redis

from .settings import Settings


@lru_cache(maxsize=4)
def _fake_server():
    import fakeredis

    return fakeredis.FakeServer()


def make_redis(settings: Settings) -> redis.Redis:
    """decode_responses: records are text; every room sees str, never bytes."""
    if settings.embedded:
        import fakeredis

        # One server per process, shared by the API and the in-process worker.
        return fakeredis.FakeRedis(server=_fake_server(), decode_responses=True)
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )


def make_async_redis(settings: Settings):
    """An asyncio client, for what waits on Redis inside the event loop (pub/sub for SSE)."""
    if settings.embedded:
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=_fake_server(), decode_responses=True)
    import redis.asyncio

    return redis.asyncio.Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=2)
