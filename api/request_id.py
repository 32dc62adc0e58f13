"""X-Request-ID on every request and response, and one structured access-log line each.

Outermost middleware, so that even answers produced by other middleware (413, 503) carry
the id. The id goes into a context variable that log records, and the Celery message of a
submitted run (core/queue.py), pick up.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logs import accept_request_id, request_id_var

log = logging.getLogger("renderq.access")

HEADER = "X-Request-ID"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        # Off by default: at a thousand requests a second a log line costs more than the
        # request's Redis calls (BENCHMARKS.md); `renderq api --access-log` turns it on.
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = accept_request_id(incoming)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                self._log_access(scope, status, started)
            request_id_var.reset(token)

    @staticmethod
    def _log_access(scope: Scope, status: int, started: float) -> None:
        log.info(
            "%s %s %d",
            scope["method"],
            scope["path"],
            status,
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "tenant": scope.get("state", {}).get("tenant"),
            },
        )
