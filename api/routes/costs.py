"""/v1/estimate-cost (what a request would cost, before submitting it) and /v1/credits (the
caller's balance)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from pipelines.request_parts import InputSizeError
from storage.prices import credits

from .. import submission
from ..bodies import BODIES
from ..costs import estimate
from ..inputs import validate_body
from core.problems import ProblemError
from ..problems import PROBLEM_RESPONSES
from ..services import Services, get_services

router = APIRouter(prefix="/v1", tags=["credits"])

# ALwrity's operation names for ours.
ALIASES = {"generate": "text-to-image"}


class CostEstimateRequest(BaseModel):
    """An operation and its fields (any of the fields its POST /v1/{operation} body takes:
    a whole body works, prompt and images optional)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [
            {"operation": "text-to-image", "num_images": 2, "width": 768, "height": 512, "num_inference_steps": 30},
            {"operation": "upscale", "upscale_factor": 4, "input_width": 512, "input_height": 512},
        ]},
    )

    operation: str = Field(
        "text-to-image", min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$",
        description="An operation (`text-to-image` or an image operation's name, e.g. `upscale`); ALwrity's `generate` "
        "means text-to-image; `_` may stand for `-`.",
    )
    input_width: int | None = Field(
        None, ge=1, le=16384, description="Width of the input image, for operations whose output follows it "
        "(instead of sending the image or its asset id). Without either, 512×512 is assumed.",
    )
    input_height: int | None = Field(None, ge=1, le=16384, description="Height of the input image.")
    provider: str | None = Field(None, max_length=100, description="ALwrity compatibility: accepted, not used (one price table).")
    model: str | None = Field(None, max_length=200, description="ALwrity compatibility: accepted and echoed, not used.")


class CostEstimate(BaseModel):
    estimated_cost: float = Field(..., description="Credits, rounded up to 0.001.")
    currency: Literal["credits"] = "credits"
    operation: str = Field(..., description="The operation priced, in renderq's spelling (`generate` → `text-to-image`).")
    provider: str | None = Field(None, description="The request's `provider`, echoed (ALwrity compatibility).")
    model: str | None = Field(None, description="The request's `model`, echoed (ALwrity compatibility).")
    num_images: int = Field(..., description="Output images priced (social-formats: one per format).")
    width: int = Field(..., description="Output width (of the first image).")
    height: int = Field(..., description="Output height (of the first image).")
    megapixels: float = Field(..., description="Output megapixels, all images together.")
    steps: int = Field(..., description="Denoising steps priced (1 for operations priced per megapixel).")
    price_entry: str = Field(..., description="The price-table entry used; `default` for operations it does not list.")
    assumed: str | None = Field(None, description="What the estimate had to assume (an input image size).")
    credits_remaining: float | None = Field(None, description="The caller's available credits now; null when unmetered.")


class CreditsView(BaseModel):
    tenant: str = Field(..., description="The caller's tenant (its API key's).")
    metered: bool = Field(..., description="False: never granted credits; runs are not charged (unless credits are required).")
    balance: float | None = Field(None, description="Credits granted less credits charged.")
    reserved: float | None = Field(None, description="Credits held by this tenant's runs still queued or running.")
    credits_remaining: float | None = Field(None, description="balance − reserved: what new runs may use.")
    currency: Literal["credits"] = "credits"


def _stand_ins(model: type[BaseModel]) -> dict:
    """Values for the required fields a price does not depend on: texts (prompts)."""
    return {name: "cost estimate" for name, field in model.model_fields.items()
            if field.is_required() and field.annotation is str}


def _prepared(operation: str, fields: dict, services: Services) -> submission.Prepared:
    """The request the fields stand for, prepared as a submit would (template, deployment
    defaults, input images given), without its models or required inputs."""
    body_type = BODIES[operation]
    body = validate_body(body_type, _stand_ins(body_type) | fields)
    return submission.prepare(services, body, estimate=True)


@router.post(
    "/estimate-cost", response_model=CostEstimate,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 422, 503)},
    summary="What a request would cost, in credits, before submitting it",
)
def estimate_cost(body: CostEstimateRequest, request: Request, services: Services = Depends(get_services)) -> CostEstimate:
    """Prices the request with the deployment's price table (see README, "Cost and credits"):
    credits per output megapixel × denoising step × image, or per output megapixel for
    operations without steps. For operations whose output size follows the input image,
    send the image (base64 or asset id) or `input_width`/`input_height`; otherwise 512×512 is
    assumed and `assumed` says so."""
    operation = ALIASES.get(body.operation, body.operation.replace("_", "-"))  # ALwrity spells remove_background
    if operation not in BODIES:
        raise ProblemError("validation-error", 422, detail=f"operation: unknown {body.operation!r}; one of {', '.join(BODIES)}")
    prepared = _prepared(operation, dict(body.model_extra or {}), services)
    sizes = prepared.input_sizes()
    if (body.input_width is None) != (body.input_height is None):
        raise ProblemError("validation-error", 422, detail="give both input_width and input_height, or neither")
    if body.input_width is not None and "image" not in sizes:
        sizes["image"] = (body.input_width, body.input_height)
    try:
        if "image" in sizes:
            prepared.request.check_input_sizes(sizes)
        priced = estimate(services.prices, operation, prepared.request, sizes)
    except InputSizeError as exc:
        raise ProblemError("invalid-image", 422, detail=str(exc)) from None
    account = services.credits.account(request.state.tenant)
    return CostEstimate(
        estimated_cost=credits(priced.millicredits), operation=operation, provider=body.provider, model=body.model,
        num_images=len(priced.sizes), width=priced.sizes[0][0] if priced.sizes else 0,
        height=priced.sizes[0][1] if priced.sizes else 0,
        megapixels=round(sum(w * h for w, h in priced.sizes) / 1e6, 6), steps=priced.steps, price_entry=priced.entry,
        assumed=priced.assumed, credits_remaining=credits(account.available) if account else None,
    )


@router.get("/credits", response_model=CreditsView, summary="The caller's credits: balance, held by runs in flight, available")
def get_credits(request: Request, services: Services = Depends(get_services)) -> CreditsView:
    tenant = request.state.tenant
    account = services.credits.account(tenant)
    if account is None:
        return CreditsView(tenant=tenant, metered=False)
    return CreditsView(
        tenant=tenant, metered=True, balance=credits(account.balance), reserved=credits(account.reserved),
        credits_remaining=credits(account.available),
    )
