"""ALwrity's error shape on /compat/alwrity/: `{"detail": "…"}` with the statuses it documents
(400 invalid request parameters, 401, 404 resource not found, 500); renderq's own statuses where
ALwrity has none (402 credits, 413, 415, 429, 503, and 504 with `run_id` when the run did not end
in time)."""

from __future__ import annotations

from ..errors import ErrorShape, slug_of
from ..runs import field_messages
from .fields import PREFIX, alwrity_name

_BAD_REQUEST = frozenset({
    "validation-error", "malformed-request", "invalid-image", "empty-mask", "unknown-asset", "unknown-model",
    "unknown-template", "unknown-style-preset", "unknown-format", "unsafe-webhook-url", "unknown-destination",
    "unknown-platform", "idempotency-key-reused",
})


def envelope(problem: dict) -> tuple[int, dict]:
    """(status, ALwrity error body) of a problem document; a validation problem's fields under
    ALwrity's names."""
    slug = slug_of(problem)
    status = int(problem.get("status") or 500)
    if slug in _BAD_REQUEST and status not in (404,) and status < 500:
        status = 400  # a GET's unknown platform stays 404 (resource not found)
    fields = field_messages(problem, alwrity_name)
    detail = "; ".join(f"{field}: {messages[0]}" for field, messages in fields.items()) if fields else None
    detail = detail or problem.get("detail") or problem.get("title") or slug
    if str(problem.get("code", "")).startswith("run_"):  # a run that ended failed, canceled or expired
        detail = f"Image generation failed: {detail}"
    body: dict = {"detail": detail}
    if problem.get("run_id"):
        body["run_id"] = problem["run_id"]
    return status, body


SHAPE = ErrorShape(PREFIX, envelope)
