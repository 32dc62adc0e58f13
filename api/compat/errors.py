"""Each compatible API's error shape: every problem document answered under a dialect's prefix
(auth, rate limits, body limits, validation, the route's own refusals) is rewritten, on its way
out, by that dialect's `envelope`. One middleware for all of them (the OpenAI Images routes
included), so nothing that answers on those paths is left in renderq's shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.problems import PROBLEM_BASE

# A problem document → (status, the service's error body).
Envelope = Callable[[dict], tuple[int, dict]]
# (scope, an answer's headers) → headers the service adds to every answer under its prefix.
ExtraHeaders = Callable[[Scope, list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]]


@dataclass(frozen=True)
class ErrorShape:
    """Where a dialect answers (a path prefix), how its errors look, their media type, and their
    JSON schema (self-contained: no $ref but to components the document has), which
    api/openapi_extras.py declares for every error answer under the prefix."""

    prefix: str
    envelope: Envelope
    media_type: str = "application/json"
    headers: ExtraHeaders | None = None  # on every answer there, errors or not (Claid's ratelimit-*)
    schema: dict | None = None


def slug_of(problem: dict) -> str:
    return str(problem.get("type", "")).removeprefix(PROBLEM_BASE)


def first_field(problem: dict, names: dict[str, str] | None = None) -> str | None:
    """The field the problem is about (its first `errors` entry), in the service's spelling
    (`names`: renderq's name → the service's)."""
    errors = problem.get("errors") or []
    field = errors[0].get("field") if errors and isinstance(errors[0], dict) else None
    return (names or {}).get(field, field) if field else None


class DialectErrorsMiddleware:
    """Rewrites problem documents answered under each shape's prefix into that shape."""

    def __init__(self, app: ASGIApp, shapes: Sequence[ErrorShape] = ()) -> None:
        self.app = app
        self.shapes = tuple(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        shape = next((s for s in self.shapes if scope["type"] == "http" and scope["path"].startswith(s.prefix)), None)
        if shape is None:
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if shape.headers is not None:
                    message = {**message, "headers": [*message.get("headers", []), *shape.headers(scope, list(message.get("headers", [])))]}
                headers = dict(message.get("headers", []))
                if headers.get(b"content-type", b"").startswith(b"application/problem+json"):
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await _send_rewritten(send, shape, held, b"".join(chunks))
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)


async def _send_rewritten(send: Send, shape: ErrorShape, start: Message, body: bytes) -> None:
    try:
        status, error = shape.envelope(json.loads(body))
    except (ValueError, TypeError, AttributeError):
        status, error = shape.envelope({"type": PROBLEM_BASE + "internal-error", "status": start["status"],
                                        "detail": body.decode("utf-8", "replace")})
    payload = json.dumps(error).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k not in (b"content-type", b"content-length")]
    headers += [(b"content-type", shape.media_type.encode()), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
