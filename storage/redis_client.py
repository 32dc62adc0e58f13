"""The Redis connection of a process: real Redis, or fakeredis in the embedded mode."""

from __future__ import annotations

from functools import lru_cache

import redis

from core.settings import Settings


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


def async_twin(client):
    """A redis.asyncio client on the same server and database as the sync `client` (fakeredis:
    the same fake server), for the API's hot routes. Derived from the client rather than the
    settings, so that a store injected into the API (tests) is what both clients talk to."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    if "server_type" in kwargs:  # fakeredis: the same fake server (given, or found by host and port)
        import fakeredis

        fields = ("host", "port", "db", "server", "version", "server_type", "lua_modules", "decode_responses")
        return fakeredis.FakeAsyncRedis(**{name: kwargs[name] for name in fields if name in kwargs})
    import redis.asyncio

    if isinstance(pool.connection_class, type) and issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
        kwargs["connection_class"] = redis.asyncio.UnixDomainSocketConnection
    elif issubclass(pool.connection_class, redis.SSLConnection):
        kwargs["connection_class"] = redis.asyncio.SSLConnection
    else:
        kwargs["connection_class"] = redis.asyncio.Connection
    return redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool(**kwargs))
