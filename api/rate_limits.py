"""Per-key request rate limits, counted in Redis by the `limits` library (sliding window
counter: smooth at window edges, two small Redis writes per request), and the
X-RateLimit-* headers that tell a caller where it stands."""

from __future__ import annotations

import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings
from storage.redis_client import redis_for

from core.problems import ProblemError

STATE_KEY = "rate_limit_headers"


def make_limiter(settings: Settings) -> SlidingWindowCounterRateLimiter:
    storage: Storage
    if settings.embedded:
        storage = MemoryStorage()
    else:
        # wrap_exceptions=False: a Redis outage raises redis.ConnectionError, which the API
        # answers as 503 like every other Redis outage. The client is ours (a Sentinel-elected
        # primary too); "redis://" only names limits' flavour.
        client = redis_for(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        storage = RedisStorage("redis://", connection_pool=client.connection_pool)
    return SlidingWindowCounterRateLimiter(storage)


@lru_cache(maxsize=64)
def parse_limit(text: str) -> RateLimitItem:
    return parse(text)


def check_rate(limiter: SlidingWindowCounterRateLimiter, limit_text: str, key_id: str) -> dict[str, str]:
    """Count one request for `key_id`; the headers to answer with, or a 429 problem."""
    item = parse_limit(limit_text)
    allowed = limiter.hit(item, "renderq", key_id)
    stats = limiter.get_window_stats(item, "renderq", key_id)
    reset = max(int(math.ceil(stats.reset_time)), int(time.time()) + 1)
    headers = {
        "X-RateLimit-Limit": str(item.amount),
        "X-RateLimit-Remaining": str(max(stats.remaining, 0)),
        "X-RateLimit-Reset": str(reset),
    }
    if not allowed:
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ProblemError(
            "rate-limited",
            429,
            detail=f"over {limit_text} for this API key; retry after {retry_after}s",
            headers=headers | {"Retry-After": str(retry_after)},
        )
    return headers


class RateLimitHeadersMiddleware:
    """Puts the headers `check_rate` computed on the response, whatever the route answered
    (a 404 or 422 counts against the limit too, and says so)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get("state", {}).get(STATE_KEY)
                if extra:
                    headers = MutableHeaders(scope=message)
                    for name, value in extra.items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
