"""/v1/estimate-cost (what a request would cost, before submitting it) and /v1/credits (the
caller's balance)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.registry import OPERATIONS
from pipelines.requests import InputSizeError
from storage.prices import credits

from ..costs import Size, estimate
from ..inputs import resolve_slot, validate_body
from ..operation_schemas import CREATE_SCHEMAS, PLACEHOLDER_ASSET
from ..problems import PROBLEM_RESPONSES, ProblemError
from ..schemas import GenerationCreate
from ..services import Services, get_services
from ..templates import TemplateFields, apply_template

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
    """Values for the required fields a price does not depend on: texts (prompts) and asset ids."""
    stand_ins = {}
    for name, field in model.model_fields.items():
        if field.is_required() and name.endswith("_asset_id"):
            stand_ins[name] = PLACEHOLDER_ASSET
        elif field.is_required() and field.annotation is str:
            stand_ins[name] = "cost estimate"
    return stand_ins


def _typed_request(operation: str, fields: dict, services: Services):
    """(the pipeline request the fields stand for, the input sizes known)."""
    if operation == "text-to-image":
        # A template's size and quality are what gets priced, as at submit.
        body, _ = apply_template(validate_body(GenerationCreate, _stand_ins(GenerationCreate) | fields), services.templates)
        return body.to_render_request(), {}
    schema = CREATE_SCHEMAS.get(operation)
    if schema is None:  # an operation without a create body of its own: its request fields
        request_type = OPERATIONS[operation].request_type
        return validate_body(request_type, _stand_ins(request_type) | fields), {}
    body = validate_body(schema, _stand_ins(schema) | fields)
    if isinstance(body, TemplateFields):
        body, _ = apply_template(body, services.templates)
    body.resolve_defaults(services)
    sizes: dict[str, Size] = {}
    for slot in body.SLOTS:
        image = resolve_slot(slot, body, {}, services.assets, services.settings, required=False)
        if image is not None:
            sizes[slot] = (image.info.width, image.info.height)
    placeholders = {slot: PLACEHOLDER_ASSET for slot in (*body.REQUIRED_SLOTS, *sizes)}
    try:
        request = body.render_request(placeholders, seed=0)
    except ValidationError as exc:
        raise ProblemError("validation-error", 422, detail=str(exc).splitlines()[-1]) from None
    return request, sizes


@router.post(
    "/estimate-cost", response_model=CostEstimate,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (422, 503)},
    summary="What a request would cost, in credits, before submitting it",
)
def estimate_cost(body: CostEstimateRequest, request: Request, services: Services = Depends(get_services)) -> CostEstimate:
    """Prices the request with the deployment's price table (see README, "Cost and credits"):
    credits per output megapixel × denoising step × image, or per output megapixel for
    operations without steps. For operations whose output size follows the input image,
    send the image (base64 or asset id) or `input_width`/`input_height`; otherwise 512×512 is
    assumed and `assumed` says so."""
    operation = ALIASES.get(body.operation, body.operation.replace("_", "-"))  # ALwrity spells remove_background
    if operation not in OPERATIONS:
        raise ProblemError("validation-error", 422, detail=f"operation: unknown {body.operation!r}; one of {', '.join(OPERATIONS)}")
    fields = dict(body.model_extra or {})
    typed, sizes = _typed_request(operation, fields, services)
    if (body.input_width is None) != (body.input_height is None):
        raise ProblemError("validation-error", 422, detail="give both input_width and input_height, or neither")
    if body.input_width is not None and "image" not in sizes:
        sizes["image"] = (body.input_width, body.input_height)
    try:
        if "image" in sizes and hasattr(typed, "check_input_sizes"):
            typed.check_input_sizes(sizes)
        priced = estimate(services.prices, operation, typed, sizes)
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
