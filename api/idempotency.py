"""`Idempotency-Key` on every POST under /v1: a retry with the same key and body gets the
first answer again (same run, same status code, header `Idempotent-Replayed: true`); the same
key with a different body is a 422 problem; keys are kept `idempotency_ttl_seconds` (24 h).

A middleware rather than per-route code, so POST routes added later are covered too. Keys are
scoped by tenant (looked up from the presented API key). Only answers below 400 are kept: a
request refused for its body, its key or a rate limit can be fixed and retried with the same
key. While the first request is still being handled, a retry gets a 409 problem.
"""

from __future__ import annotations

import logging

import redis
from anyio import to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.idempotency import IdempotencyStore, Stored, fingerprint
from core.problems import Problem

from .auth import ANONYMOUS_TENANT, PROTECTED_PREFIX
from .problems import problem_response
from .request_limits import BodyTooLarge, too_large_response

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
# Not replayed: they describe the original exchange, not the answer.
_NOT_REPLAYED = {"content-length", "date", "server", "x-request-id", "retry-after"}


def _problem(scope: Scope, slug: str, status: int, detail: str, headers: dict | None = None):
    return problem_response(Problem.of(slug, status, detail=detail, instance=scope["path"]), headers)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _presented_key(headers: dict[bytes, bytes]) -> str | None:
    scheme, _, credentials = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get(b"x-api-key", b"").decode("latin-1").strip() or None


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ()))
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(PROTECTED_PREFIX)
            or HEADER not in headers
        ):
            await self.app(scope, receive, send)
            return
        idempotency_key = headers[HEADER].decode("latin-1")
        if not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH or not idempotency_key.isprintable():
            await _problem(scope, "validation-error", 422, f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters")(scope, receive, send)
            return
        send = _echoing(send, headers[HEADER])
        services = scope["app"].state.services
        try:
            body = await _read_body(receive)
        except BodyTooLarge as exc:
            await too_large_response(exc.limit, scope["path"])(scope, receive, send)
            return
        try:
            tenant = await to_thread.run_sync(self._tenant, services, headers)
            if tenant is None:  # no valid key: the auth guard answers 401, nothing to remember
                await self.app(scope, _replay(body, receive), send)
                return
            store = IdempotencyStore(services.runs.redis, services.settings.idempotency_ttl_seconds)
            fp = fingerprint(scope["method"], scope["path"], body)
            earlier = await to_thread.run_sync(store.begin, tenant, idempotency_key, fp)
        except redis.RedisError as exc:
            log.error("redis unavailable for idempotency: %s", exc)
            await _problem(scope, "service-unavailable", 503, "run records are unreachable; try again shortly", {"Retry-After": "2"})(scope, receive, send)
            return
        if earlier is not None:
            await self._answer_again(scope, receive, send, earlier, fp)
            return
        await self._first_answer(scope, receive, send, body, store, tenant, idempotency_key, fp)

    @staticmethod
    def _tenant(services, headers: dict[bytes, bytes]) -> str | None:
        presented = _presented_key(headers)
        if presented is None:
            return ANONYMOUS_TENANT if services.auth_disabled else None
        key = services.keys.lookup(presented)
        return key.tenant if key is not None else None

    async def _answer_again(self, scope: Scope, receive: Receive, send: Send, earlier: Stored, fp: str) -> None:
        if earlier.fingerprint != fp:
            response = _problem(scope, "idempotency-key-reused", 422, "this Idempotency-Key was already used with a different request")
        elif not earlier.done:
            response = _problem(scope, "idempotency-in-progress", 409, "a request with this Idempotency-Key is still in progress", {"Retry-After": "1"})
        else:
            await send(
                {
                    "type": "http.response.start",
                    "status": earlier.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in earlier.headers or []]
                    + [(b"content-length", str(len(earlier.body)).encode()), (b"idempotent-replayed", b"true")],
                }
            )
            await send({"type": "http.response.body", "body": earlier.body})
            return
        await response(scope, receive, send)

    async def _first_answer(self, scope: Scope, receive: Receive, send: Send, body: bytes, store: IdempotencyStore, tenant: str, key: str, fp: str) -> None:
        status = 0
        kept_headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    name_text = name.decode("latin-1").lower()
                    if name_text not in _NOT_REPLAYED and not name_text.startswith("x-ratelimit-"):
                        kept_headers.append((name_text, value.decode("latin-1")))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, _replay(body, receive), capture)
        except BaseException:
            await to_thread.run_sync(_quietly, store.abandon, tenant, key)
            raise
        if 200 <= status < 400:
            await to_thread.run_sync(_quietly, store.finish, tenant, key, fp, status, kept_headers, b"".join(chunks))
        else:
            await to_thread.run_sync(_quietly, store.abandon, tenant, key)


def _quietly(fn, *args) -> None:
    """The answer has been sent; a Redis error now must not turn it into a 500."""
    try:
        fn(*args)
    except redis.RedisError as exc:
        log.warning("could not record the idempotent answer: %s", exc)


def _echoing(send: Send, key: bytes) -> Send:
    """Every answer to a request with an Idempotency-Key says the key back (first, replayed, refused)."""

    async def echo(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (HEADER, key)]
        await send(message)

    return echo


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body once, then the connection's own messages (a real disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
