"""Claid's error shape on /compat/claid/: `{"error_code", "error_type", "error_message",
"error_details"}` with the statuses Claid documents (401 authorization, 402 no API calls left,
403, 422 unprocessable entity, 429 too many requests), and Claid's `ratelimit-limit`,
`ratelimit-remaining`, `ratelimit-reset` headers on every answer there."""

from __future__ import annotations

import time

from starlette.types import Scope

from ..errors import ErrorShape, slug_of
from ..runs import field_messages
from ...rate_limits import STATE_KEY, parse_limit
from .fields import PREFIX, claid_name

# renderq's problem slug → (Claid's status, error_type); the status stays ours when None.
_BY_SLUG: dict[str, tuple[int | None, str]] = {
    "validation-error": (422, "validation"),
    "malformed-request": (422, "validation"),
    "invalid-image": (422, "validation"),
    "unknown-model": (422, "validation"),
    "unknown-template": (422, "validation"),
    "unknown-style-preset": (422, "validation"),
    "unknown-destination": (422, "validation"),
    "unsafe-webhook-url": (422, "validation"),
    "unauthorized": (401, "authorization"),
    "insufficient-credits": (402, "billing"),
    "rate-limited": (429, "rate_limit"),
    "too-many-active-runs": (429, "rate_limit"),
}


def envelope(problem: dict) -> tuple[int, dict]:
    """(status, Claid error body) of a problem document."""
    slug = slug_of(problem) or "internal-error"
    status = int(problem.get("status") or 500)
    mapped, kind = _BY_SLUG.get(slug, (None, "server" if status >= 500 else "request"))
    details: dict = field_messages(problem, claid_name)
    message = "; ".join(f"{field}: {messages[0]}" for field, messages in details.items()) if details else None
    if problem.get("run_id"):
        details["run_id"] = problem["run_id"]
    body = {
        "error_code": problem.get("code") or slug.replace("-", "_"),
        "error_type": kind,
        "error_message": message or problem.get("detail") or problem.get("title") or slug,
        "error_details": details,
    }
    return mapped or status, body


def ratelimit_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Claid's (IETF draft) rate-limit headers from renderq's X-RateLimit-* ones: the limit and
    its window, the requests left, the seconds until the window resets."""
    ours = {k.decode().lower(): v.decode() for k, v in headers if k.lower().startswith(b"x-ratelimit-")}
    state = scope.get("state", {})
    ours = ours or {k.lower(): v for k, v in (state.get(STATE_KEY) or {}).items()}
    if "x-ratelimit-limit" not in ours:
        return []
    limit = ours["x-ratelimit-limit"]
    principal = state.get("principal")
    services = scope["app"].state.services
    text = (principal.key.rate_limit if principal is not None and principal.key is not None else None) or services.settings.rate_limit
    window = parse_limit(text).get_expiry()
    reset = max(0, int(ours.get("x-ratelimit-reset", "0")) - int(time.time()))
    return [(b"ratelimit-limit", f"{limit}, {limit};w={window}".encode()),
            (b"ratelimit-remaining", ours.get("x-ratelimit-remaining", "0").encode()),
            (b"ratelimit-reset", str(reset).encode())]


SHAPE = ErrorShape(PREFIX, envelope, headers=ratelimit_headers)
