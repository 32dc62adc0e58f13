"""Request body limits for every route, before any route reads a byte: size (413 problem),
checked on Content-Length and again on the bytes actually streamed (a chunked or lying body is
cut off at the limit, never buffered whole), and content type (415 problem for a body no
route of ours takes).

The cap is the largest body any route takes (api/inputs.body_limit: two base64 input images
plus fields); routes keep their own tighter checks (per-file sizes, pixels, prompt lengths).
"""

from __future__ import annotations

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
        if declared > limit:
            await too_large_response(limit, scope["path"])(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        has_body = declared > 0 or b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if has_body and not _accepted(content_type):
            await unsupported_type_response(content_type, scope["path"])(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await too_large_response(limit, scope["path"])(scope, receive, send)
