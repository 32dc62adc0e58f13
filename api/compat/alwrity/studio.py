"""ALwrity's Create Studio and what describes it: POST create (a text-to-image run, waited for),
POST estimate-cost (renderq's price), GET templates (+ search, recommend), providers, social
platform formats, platform specs and health, each read from renderq's own catalogs."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from core.problems import ProblemError
from storage.platforms import Platform
from storage.templates import ID_PATTERN, Template

from ...bodies import BODIES
from ...inputs import read_body, validate_body
from ...routes.costs import CostEstimateRequest, estimate_cost
from ...services import Services, services_of
from ..common import refused, submit
from ..runs import completed, images_of, plain_base64
from .fields import PROVIDER, QUALITY_WORDS, exact_size, given, native
from .schemas import (
    ERRORS, CreateAnswer, CreateRequest, EstimateAnswer, EstimateRequest, FormatsAnswer, HealthAnswer, ProvidersAnswer,
    SpecsAnswer, TemplatesAnswer, request_doc,
)

router = APIRouter(prefix="/compat/alwrity/api/image-studio", tags=["alwrity"])
# ALwrity's operation names for renderq's (estimate-cost).
OPERATIONS = {
    "generate": "text-to-image", "create": "text-to-image", "remove_background": "remove-background",
    "inpaint": "inpaint", "outpaint": "outpaint", "search_replace": "search-replace", "search_recolor": "search-recolor",
    "general_edit": "general-edit", "upscale": "upscale", "sketch": "sketch", "structure": "structure", "style": "style",
    "style_transfer": "style-transfer", "social_optimize": "social-formats",
}


def create_fields(data: dict) -> dict:
    """ALwrity's create request as renderq's text-to-image body."""
    fields = given(data)
    if fields.pop("use_persona", False):
        raise refused("use_persona", "renderq has no personas; send false or null", status=400)
    if "persona_id" in fields:
        raise refused("persona_id", "renderq has no personas; send null", status=400)
    # renderq enhances a prompt with a style preset's wording (the template's, or style_preset);
    # enhance_prompt false renders the prompt as sent unless a style_preset is named.
    if fields.pop("enhance_prompt", True) is False and "style_preset" not in fields:
        fields["style_preset"] = "none"
    return native(fields, "text-to-image", "create")


@router.post("/create", summary="ALwrity: generate images from a prompt", response_model=CreateAnswer,
             responses=ERRORS, openapi_extra=request_doc(CreateRequest))
async def create(request: Request) -> dict:
    """ALwrity's Create Studio, rendered as a renderq text-to-image run."""
    services = services_of(request)
    data, _ = await read_body(request, services.settings)
    record = await completed(services, await submit(services, "text-to-image", create_fields(data)))
    template = services.templates.template(record.template_id) if record.template_id else None
    quality = data.get("quality") or (QUALITY_WORDS[template.quality] if template else "standard")
    images = images_of(record)
    encoded = await run_in_threadpool(lambda: [plain_base64(services, image) for image in images])
    first = images[0]
    return {
        "success": True,
        "request": {
            "prompt": record.input_prompt or record.request.get("prompt"), "enhanced_prompt": record.request.get("prompt"),
            "template_id": record.template_id, "template_name": template.name if template else None, "provider": PROVIDER,
            "model": record.model_id, "dimensions": f"{first.width}x{first.height}", "quality": quality,
        },
        "results": [{"image_base64": data_b64, "width": image.width, "height": image.height, "provider": PROVIDER,
                     "model": record.model_id, "variation": index + 1} for index, (image, data_b64) in enumerate(zip(images, encoded))],
        "total_generated": len(images), "total_failed": 0, "run_id": record.run_id,
    }


@router.post("/estimate-cost", summary="ALwrity: what an operation would cost, in credits", response_model=EstimateAnswer, responses=ERRORS,
             openapi_extra=request_doc(EstimateRequest))
async def estimate(request: Request) -> dict:
    """renderq's price of the operation (its one price table: `provider` and `model` are echoed,
    not priced). width/height are the output's, or the input image's for operations whose
    output follows it (upscale, edits)."""
    services = services_of(request)
    data = given((await read_body(request, services.settings))[0])
    if "provider" not in data:
        raise refused("provider", "Field required", status=400)
    provider, model, operation = data.pop("provider"), data.pop("model", None), data.pop("operation", "generate")
    if operation not in OPERATIONS:
        raise refused("operation", f"{operation!r}: one of {', '.join(OPERATIONS)}", status=400)
    native_operation = OPERATIONS[operation]
    body_fields = BODIES[native_operation].model_fields
    if "width" not in body_fields:
        data = {{"width": "input_width", "height": "input_height"}.get(k, k): v for k, v in data.items()}
    if "num_images" not in body_fields and data.get("num_images", 1) == 1:
        data.pop("num_images", None)
    body = validate_body(CostEstimateRequest, {"operation": native_operation, "provider": provider, "model": model, **exact_size(data)})
    priced = await run_in_threadpool(estimate_cost, body, request, services)
    return {"estimated_cost": priced.estimated_cost, "currency": "credits", "provider": provider, "model": model,
            "operation": operation, "num_images": priced.num_images, "width": priced.width, "height": priced.height}


def _template(template: Template) -> dict:
    view = template.model_dump(exclude={"tags"})
    return view | {"quality": QUALITY_WORDS[template.quality], "recommended_provider": PROVIDER}


def _templates(found: list) -> dict:
    templates = [_template(item[0] if isinstance(item, tuple) else item) for item in found]
    return {"templates": templates, "total": len(templates)}


def _slug() -> str | None:
    return Query(None, max_length=64, pattern=ID_PATTERN)


@router.get("/templates", summary="ALwrity: templates, optionally of one platform or category", response_model=TemplatesAnswer, responses=ERRORS)
def templates(request: Request, platform: str | None = _slug(), category: str | None = _slug()) -> dict:
    return _templates(services_of(request).templates.filter(platform, category))


@router.get("/templates/search", summary="ALwrity: templates matching a query", response_model=TemplatesAnswer, responses=ERRORS)
def search_templates(request: Request, query: str = Query(..., min_length=1, max_length=200)) -> dict:
    return _templates(services_of(request).templates.search(query, None, None))


@router.get("/templates/recommend", summary="ALwrity: templates for a use case", response_model=TemplatesAnswer, responses=ERRORS)
def recommend_templates(request: Request, use_case: str = Query(..., min_length=1, max_length=200),
                        platform: str | None = _slug()) -> dict:
    return _templates(services_of(request).templates.recommend(use_case, platform))


@router.get("/providers", summary="ALwrity: providers and their models (renderq's one)", response_model=ProvidersAnswer, responses=ERRORS)
def providers(request: Request) -> dict:
    services = services_of(request)
    return {"providers": {PROVIDER: {
        "name": "renderq", "models": [entry.id for entry in services.catalog.of_kind("base")],
        "capabilities": ["generation", "editing", "upscaling", "control", "social_optimization"],
        "max_resolution": "2048x2048", "cost_range": "per output megapixel × step: POST /api/image-studio/estimate-cost",
    }}}


def _platform(services: Services, name: str) -> Platform:
    found = services.platforms.get(name)
    if found is None:
        known = ", ".join(p.id for p in services.platforms.platforms)
        raise ProblemError("unknown-platform", 404, detail=f"no platform {name!r}; one of {known}")
    return found


_NAME = Path(..., max_length=40)


@router.get("/social/platforms/{platform}/formats", summary="ALwrity: a platform's image formats", response_model=FormatsAnswer,
            responses=ERRORS)
def platform_formats(request: Request, platform: str = _NAME) -> dict:
    found = _platform(services_of(request), platform)
    return {"formats": [{"name": f.name, "width": f.width, "height": f.height, "ratio": f.ratio, "safe_zone": f.safe_zone.model_dump(),
                         "file_type": f.file_types[0], "file_types": f.file_types, "max_size_mb": f.max_size_mb} for f in found.formats]}


@router.get("/platform-specs/{platform}", summary="ALwrity: a platform's specifications", response_model=SpecsAnswer, responses=ERRORS)
def platform_specs(request: Request, platform: str = _NAME) -> dict:
    found = _platform(services_of(request), platform)
    file_types = list(dict.fromkeys(t for f in found.formats for t in f.file_types))
    largest = max(f.max_size_mb for f in found.formats)
    return {"name": found.name, "formats": [{"name": f.name, "ratio": f.ratio, "size": f"{f.width}x{f.height}"} for f in found.formats],
            "file_types": file_types, "max_file_size": f"{largest:g}MB"}


@router.get("/health", summary="ALwrity: Image Studio health", response_model=HealthAnswer, responses=ERRORS)
def health(request: Request) -> dict:
    available = "available"
    return {"status": "healthy", "service": "image_studio", "version": request.app.version, "modules": {
        name: available for name in ("create_studio", "edit_studio", "upscale_studio", "control_studio",
                                     "social_optimizer", "templates", "providers")}}
