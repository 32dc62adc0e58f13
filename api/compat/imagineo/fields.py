"""ImagineoAI's request fields, how they become renderq's text-to-image body, and its error
envelope."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ...compat.errors import ErrorShape, first_field, slug_of
from ..common import native_extras

PREFIX = "/compat/imagineo/"
# renderq's field → ImagineoAI's, for the errors.
THEIR_NAMES = {"prompt": "positive_prompt", "guidance_scale": "guidance"}
OURS = {theirs: ours for ours, theirs in THEIR_NAMES.items()}


class GenerateRequest(BaseModel):
    """POST /generate. Other top-level fields are renderq's own text-to-image knobs (seed,
    num_inference_steps, num_images, loras, webhook_url, …)."""

    model_config = ConfigDict(extra="allow")

    positive_prompt: str = Field(..., min_length=1, description="What to draw (renderq's prompt).")
    negative_prompt: str | None = Field(None, description="What to keep out of the image.")
    model_id: str | None = Field(None, description="A LoRA (rendered on its base model) or base model id from GET /models.")
    lora_weight: float | None = Field(None, description="The weight of the LoRA model_id names (default 1.0; -2..2).")
    guidance: float | None = Field(None, ge=1, le=20, description="Guidance scale, 1–20 (renderq's guidance_scale).")
    width: int | None = Field(None, description="Pixels, a multiple of 8, 64–2048.")
    height: int | None = Field(None, description="Pixels, a multiple of 8, 64–2048.")


def native_fields(request: GenerateRequest) -> dict:
    """The text-to-image body's fields for ImagineoAI's request."""
    mapped = {
        "prompt": request.positive_prompt, "negative_prompt": request.negative_prompt, "model_id": request.model_id,
        "lora_weight": request.lora_weight, "guidance_scale": request.guidance, "width": request.width, "height": request.height,
    }
    out = {name: value for name, value in mapped.items() if value is not None}
    return out | native_extras(request.model_extra or {}, "text-to-image", blocked=set(mapped) - {"negative_prompt"})


# renderq's problem slug → (status, ImagineoAI's code); statuses are those ImagineoAI documents.
_BY_SLUG = {
    "validation-error": (400, "invalid_parameter"), "malformed-request": (400, "invalid_request"),
    "unknown-model": (400, "invalid_parameter"), "unknown-asset": (400, "invalid_parameter"),
    "unauthorized": (401, "unauthorized"), "insufficient-credits": (403, "insufficient_credits"),
    "not-found": (404, "not_found"), "rate-limited": (429, "rate_limit_exceeded"),
    "too-many-active-runs": (429, "rate_limit_exceeded"), "payload-too-large": (400, "invalid_request"),
    "unsupported-media-type": (400, "invalid_request"), "method-not-allowed": (400, "invalid_request"),
}


def envelope(problem: dict) -> tuple[int, dict]:
    """`{"error": {"code", "message"}}` of a problem document; `param` (ImagineoAI's field name)
    and `run_id` where there is one."""
    slug = slug_of(problem)
    status = int(problem.get("status") or 500)
    fallback = (400, "invalid_parameter") if status == 422 else (status, "server_error" if status >= 500 else slug.replace("-", "_"))
    mapped, code = _BY_SLUG.get(slug, fallback)
    param = first_field(problem, THEIR_NAMES)
    if slug == "unknown-model" and param is None:
        param = "model_id"
    message = problem.get("detail") or problem.get("title") or slug
    if param:
        errors = problem.get("errors") or [{}]
        message = f"Invalid value for parameter '{param}'. {errors[0].get('message') or message}"
    error = {"code": code, "message": message}
    if param:
        error["param"] = param
    if problem.get("run_id"):
        error["run_id"] = problem["run_id"]
    return mapped, {"error": error}


SHAPE = ErrorShape(PREFIX, envelope, schema={
    "type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {name: {"type": "string"} for name in ("code", "message", "param", "run_id")},
    }},
})
