"""Request body limits for every route, before any route reads a byte: size (413 problem),
checked on Content-Length and again on the bytes actually streamed (a chunked or lying body is
cut off at the limit, never buffered whole), and content type (415 problem for a body no
route of ours takes).

The cap is the largest body any route takes (api/inputs.body_limit: two base64 input images
plus fields); routes keep their own tighter checks (per-file sizes, pixels, prompt lengths).
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.problems import Problem

from .inputs import body_limit
from .problems import problem_response

_BODY_METHODS = {"POST", "PUT", "PATCH"}
# Bodies some route takes: JSON and JSON Lines (batches also take JSONL as text/plain), uploads
# (multipart or raw image bytes). Anything else is a 415; no content type at all is left to the
# route (api/inputs.read_body reads it as JSON).
ACCEPTED_BODY_TYPES = ("application/json", "multipart/form-data", "application/octet-stream", "image/", "text/plain")


class BodyTooLarge(HTTPException):
    """An HTTPException so that, raised while a route reads its body, FastAPI passes it to the
    problem handlers as a 413 instead of wrapping it in a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over its limit of {limit} bytes")
        self.limit = limit


def too_large_response(limit: int, path: str):
    problem = Problem.of("payload-too-large", 413, detail=f"the request body is over its limit of {limit} bytes", instance=path)
    return problem_response(problem, {"Connection": "close"})


def unsupported_type_response(content_type: str, path: str):
    detail = f"a body of type {content_type or '(none)'} is not taken here; send application/json (uploads: multipart/form-data)"
    return problem_response(Problem.of("unsupported-media-type", 415, detail=detail, instance=path))


def _accepted(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type:
        return True
    return "json" in media_type or any(media_type.startswith(accepted) for accepted in ACCEPTED_BODY_TYPES)



# A refused body is still read, up to this many bytes and seconds, before the answer (servers
# that answer early do the same: nginx's lingering close), so that a client that sends its whole
# body before reading (Python's urllib, most) gets the 413 rather than a connection reset.
DRAIN_BYTES = 64 * 2**20
DRAIN_SECONDS = 10.0


async def drain(receive: Receive, budget: int = DRAIN_BYTES) -> None:
    """Read and drop the rest of a request body, within `budget` bytes and DRAIN_SECONDS."""
    async def read() -> None:
        left = budget
        while left > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            left -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    try:
        await asyncio.wait_for(read(), DRAIN_SECONDS)
    except asyncio.TimeoutError:
        pass


class BodyLimitsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = body_limit(scope["app"].state.services.settings)
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        if declared > limit:
            if not expects_continue and declared <= DRAIN_BYTES:
                await drain(receive)
            await too_large_response(limit, scope["path"])(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        has_body = declared > 0 or b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if has_body and not _accepted(content_type):
            await unsupported_type_response(content_type, scope["path"])(scope, receive, send)
            return

        received = 0
        body_done = not has_body

        async def limited_receive() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit)
            else:
                body_done = True
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, body_done
            if message["type"] == "http.response.start":
                started = True
                # An error answered before the body was read (a 413 on Content-Length): read the
                # rest first, within bounds, or the client, still sending, sees a reset and never
                # the answer. Not when the client waits for 100-continue: it sends no body then.
                if message["status"] >= 400 and not body_done and not (expects_continue and received == 0):
                    body_done = True
                    await drain(receive, DRAIN_BYTES - received)
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            if not body_done:
                await drain(receive, DRAIN_BYTES - received)
            await too_large_response(limit, scope["path"])(scope, receive, send)
