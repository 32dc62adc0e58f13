"""OpenAI's error envelope on the OpenAI routes: every problem document answered under
/v1/images/ (auth, rate limits, body limits, validation, ours) is rewritten, on its way out, as
`{"error": {"message", "type", "param", "code"}}` with the status OpenAI gives for it (by the
dialects' one middleware, api/compat/errors.py), so nothing that answers on these paths
(middleware, guard, handler, route) is left in renderq's shape."""

from __future__ import annotations

from core.problems import PROBLEM_BASE

from ..compat.errors import ErrorShape

PREFIX = "/v1/images/"
# renderq's problem slug → (OpenAI status, error type, code); the status stays ours when None.
_BY_SLUG: dict[str, tuple[int | None, str, str | None]] = {
    "validation-error": (400, "invalid_request_error", "invalid_value"),
    "malformed-request": (400, "invalid_request_error", None),
    "invalid-image": (400, "invalid_request_error", "invalid_image"),
    "empty-mask": (400, "invalid_request_error", "invalid_mask"),
    "unknown-asset": (400, "invalid_request_error", "invalid_value"),
    "unknown-model": (404, "invalid_request_error", "model_not_found"),
    "unknown-template": (400, "invalid_request_error", "invalid_value"),
    "unknown-style-preset": (400, "invalid_request_error", "invalid_value"),
    "unauthorized": (401, "invalid_request_error", "invalid_api_key"),
    "not-found": (404, "invalid_request_error", None),
    "method-not-allowed": (405, "invalid_request_error", None),
    "payload-too-large": (413, "invalid_request_error", "payload_too_large"),
    "unsupported-media-type": (415, "invalid_request_error", None),
    "insufficient-credits": (429, "insufficient_quota", "insufficient_quota"),
    "rate-limited": (429, "requests", "rate_limit_exceeded"),
    "too-many-active-runs": (429, "requests", "rate_limit_exceeded"),
    "idempotency-key-reused": (409, "invalid_request_error", None),
    "idempotency-in-progress": (409, "invalid_request_error", None),
}
# Our field names → OpenAI's, for `param`.
_PARAMS = {"num_images": "n", "model_id": "model", "width": "size", "height": "size"}


def envelope(problem: dict) -> tuple[int, dict]:
    """(status, OpenAI error body) of a problem document."""
    slug = str(problem.get("type", "")).removeprefix(PROBLEM_BASE)
    status = int(problem.get("status") or 500)
    mapped_status, kind, code = _BY_SLUG.get(slug, (None, "server_error" if status >= 500 else "invalid_request_error", None))
    errors = problem.get("errors") or []
    param = problem.get("openai_param")
    if param is None and errors:
        param = errors[0].get("field")
        param = _PARAMS.get(param, param)
    error = {
        "message": problem.get("detail") or problem.get("title") or slug,
        "type": kind,
        "param": param,
        "code": problem.get("openai_code") or code or (slug.replace("-", "_") or None),
    }
    if problem.get("run_id"):
        error["run_id"] = problem["run_id"]
    return mapped_status or status, {"error": error}


SHAPE = ErrorShape(PREFIX, envelope, schema={"$ref": "#/components/schemas/OpenAIErrorBody"})  # api/compat/errors.py rewrites every problem under /v1/images/
