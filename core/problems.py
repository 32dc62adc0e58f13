"""Problem details (RFC 9457): the one shape every renderq error takes.

The one module that says what a problem is: its types (slug, title, meaning), the document,
and the exception that carries one to the edge that answers it. Run records keep the problem of
a failed run, so it lives here, below both the API (which answers with problems, api/problems.py
installs the HTTP handlers) and the worker (which records them).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_BASE = "/problems/"

# slug → (title, what it means). The API serves these at /problems/{slug}.
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "validation-error": ("Request validation failed", "A field is missing, malformed or out of range; `errors` says which."),
    "malformed-request": ("Malformed request body", "The body is not valid JSON (or not the content type the endpoint takes)."),
    "not-found": ("Not found", "No such resource, or it has expired."),
    "run-expired": ("Run expired", "The run existed but has expired: its record and images are gone (24 hours after it "
                    "was created). Its id answers this for 7 days after that, then 404 like an id that never existed."),
    "method-not-allowed": ("Method not allowed", "The resource exists but does not take this method."),
    "payload-too-large": ("Payload too large", "The request body or an uploaded file is over its size limit."),
    "invalid-image": ("Invalid image", "An input image could not be decoded, or breaks a size rule of the operation."),
    "unknown-asset": ("Unknown asset", "An asset id names no asset (never uploaded, or expired after 24 hours)."),
    "unknown-model": ("Unknown model", "A model_id or LoRA id is not served by this deployment; GET /v1/models lists them."),
    "unknown-template": ("Unknown template", "A template_id names no template of this deployment; GET /v1/templates lists them."),
    "unknown-style-preset": ("Unknown style preset", "A style_preset (given, or named by the template) is not served; GET /v1/style-presets lists them."),
    "unsupported-media-type": ("Unsupported media type", "The body's content type is not one this endpoint takes."),
    "service-unavailable": ("Service unavailable", "A dependency (Redis, object storage, the queue) is unreachable, or Redis is failing over to a new primary; try again after Retry-After seconds."),
    "unauthorized": ("Unauthorized", "No API key, or an unknown or revoked one. Send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."),
    "rate-limited": ("Too many requests", "This API key is over its request rate; wait Retry-After seconds."),
    "insufficient-credits": ("Insufficient credits", "The tenant's available credits (balance less what runs in flight hold) are below this request's estimated cost; nothing was queued. POST /v1/estimate-cost prices a request, GET /v1/credits shows the balance."),
    "too-many-active-runs": ("Too many active runs", "This API key has its maximum of queued + running runs; wait for some to finish."),
    "idempotency-key-reused": ("Idempotency key reused", "This Idempotency-Key was used with a different request body (keys are kept 24 hours)."),
    "idempotency-in-progress": ("Idempotent request in progress", "A request with this Idempotency-Key is still being processed; retry shortly."),
    "internal-error": ("Internal error", "Something failed that should not have; the request id helps find it in the logs."),
    "render-failed": ("Render failed", "The pipeline raised while rendering this run."),
    "model-unavailable": ("Model unavailable", "The model could not be loaded (unknown id, missing files, no network to the hub)."),
    "out-of-memory": ("Out of memory", "The render did not fit in the device's memory; try fewer or smaller images."),
    "render-timeout": ("Render timed out", "The render ran past its time limit and was stopped."),
    "worker-lost": ("Worker lost", "The worker rendering this run died too many times; the run was given up."),
    "not-retryable": ("Run not retryable", "Only a failed, canceled or expired run can be retried; this one is still queued, running or completed."),
    "unsafe-webhook-url": ("Webhook URL not allowed", "Webhook URLs must be http(s) and resolve only to public addresses (no private, loopback or link-local targets)."),
    "unknown-platform": ("Unknown platform", "No such social platform; GET /v1/platforms lists them (twitter is accepted for x)."),
    "unknown-format": ("Unknown format", "The platform has no format of this id or name; GET /v1/platforms/{platform}/formats lists them."),
    "output-too-large": ("Output too large", "An output could not be encoded within its format's max file size, even at the lowest quality tried; use output_format jpg."),
    "storage-failed": ("Storage failed", "The rendered images could not be written to object storage."),
    "nothing-matched": ("Nothing matched", "search-replace/search-recolor found nothing in the image matching the words "
                        "(an empty mask); no image was made. Lower mask_threshold or rephrase."),
    "empty-mask": ("Empty mask", "An inpaint's mask selects no pixel (no pixel of the mask colour, or a mask image with no "
                   "white), so nothing would be repainted; nothing was run or charged. Fix the mask or mask_color_rgba."),
    "unknown-destination": ("Unknown destination", "`output` names no destination of this tenant; GET /v1/destinations lists them."),
    "destination-exists": ("Destination exists", "This tenant already has a destination of that name; delete it first to register it again."),
    "destination-check-failed": ("Destination check failed", "The test write to the destination's bucket failed: endpoint unreachable, bucket missing, or credentials refused; `detail` has S3's answer."),
    "unsafe-destination-endpoint": ("Destination endpoint not allowed", "endpoint_url must be http(s) and resolve only to public addresses (no private, loopback or link-local targets)."),
    "destinations-unavailable": ("Destinations unavailable", "This deployment has no RENDERQ_SECRETS_KEY to encrypt credentials with, so it takes no destinations."),
    "destination-failed": ("Destination write failed", "The rendered images could not be written to the run's output destination (deleted, refused, unreachable); nothing was stored elsewhere."),
}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(..., description="URI reference naming the problem type.")
    title: str = Field(..., description="Short summary of the problem type.")
    status: int = Field(..., description="HTTP status code.")
    detail: str | None = Field(None, description="What went wrong in this occurrence.")
    instance: str | None = Field(None, description="URI reference of this occurrence.")

    @classmethod
    def of(cls, slug: str, status: int, detail: str | None = None, instance: str | None = None, **extra) -> "Problem":
        title, _ = PROBLEM_TYPES[slug]
        return cls(type=PROBLEM_BASE + slug, title=title, status=status, detail=detail, instance=instance, **extra)


class ProblemError(Exception):
    """Raised where the cause is known, to be answered (the API) or recorded as the problem
    `slug` with `status`; `extra` fields join the document."""

    def __init__(self, slug: str, status: int, detail: str | None = None, headers: dict | None = None, **extra) -> None:
        super().__init__(detail or slug)
        self.slug, self.status, self.detail, self.headers, self.extra = slug, status, detail, headers, extra
