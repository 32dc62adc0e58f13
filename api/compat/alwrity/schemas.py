"""ALwrity's request and answer bodies in /openapi.json (tagged "alwrity"): what the routes take
and answer, as ALwrity documents them; the routes read the bodies themselves (nulls dropped)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")


class CreateRequest(_Request):
    prompt: str
    template_id: str | None = None
    provider: str | None = Field(None, description='"auto", "renderq" or null; another provider is refused.')
    model: str | None = Field(None, description="A model id from GET /v1/models.")
    width: int | None = None
    height: int | None = None
    aspect_ratio: str | None = None
    style_preset: str | None = None
    quality: str | None = Field(None, description="draft, standard (default), premium.")
    negative_prompt: str | None = None
    guidance_scale: float | None = None
    steps: int | None = None
    seed: int | None = None
    num_variations: int | None = Field(None, description="1–4 (renderq renders at most 4 per request).")
    enhance_prompt: bool | None = None
    use_persona: bool | None = None
    persona_id: str | None = None


class EstimateRequest(_Request):
    provider: str
    model: str | None = None
    operation: str | None = "generate"
    num_images: int | None = 1
    width: int | None = None
    height: int | None = None


class EditRequest(_Request):
    image_base64: str
    operation: str = Field(..., description="remove_background, inpaint, outpaint, search_replace, search_recolor, general_edit")
    prompt: str | None = None
    negative_prompt: str | None = None
    mask_base64: str | None = None
    search_prompt: str | None = None
    select_prompt: str | None = None
    background_image_base64: str | None = Field(None, description="Refused: renderq has no relight/background replacement.")
    lighting_image_base64: str | None = Field(None, description="Refused: renderq has no relight/background replacement.")
    expand_left: int | None = 0
    expand_right: int | None = 0
    expand_up: int | None = 0
    expand_down: int | None = 0
    provider: str | None = None
    model: str | None = None
    style_preset: str | None = None
    guidance_scale: float | None = None
    steps: int | None = None
    seed: int | None = None
    output_format: str | None = "png"
    options: dict | None = Field(None, description="renderq's own fields of the operation (strength, grow_mask, …).")


class UpscaleRequest(_Request):
    image_base64: str
    mode: str | None = Field("auto", description="fast, conservative, auto; creative is refused.")
    target_width: int | None = None
    target_height: int | None = None
    preset: str | None = Field(None, description="web (×2), social (×2), print (×4).")
    prompt: str | None = Field(None, description="Refused: renderq's upscalers take no prompt.")


class ControlRequest(_Request):
    control_image_base64: str
    operation: str = Field(..., description="sketch, structure, style, style_transfer")
    prompt: str | None = None
    style_image_base64: str | None = None
    negative_prompt: str | None = None
    control_strength: float | None = None
    fidelity: float | None = None
    style_strength: float | None = None
    composition_fidelity: float | None = None
    change_strength: float | None = None
    aspect_ratio: str | None = None
    style_preset: str | None = None
    seed: int | None = None
    output_format: str | None = "png"


class SocialRequest(_Request):
    image_base64: str
    platforms: list[str]
    format_names: dict | None = None
    show_safe_zones: bool | None = False
    crop_mode: str | None = "smart"
    focal_point: dict | None = None
    output_format: str | None = "png"


class CreateResult(BaseModel):
    image_base64: str
    width: int
    height: int
    provider: str
    model: str
    variation: int


class CreateAnswer(BaseModel):
    success: bool
    request: dict
    results: list[CreateResult]
    total_generated: int
    total_failed: int
    run_id: str = Field(..., description="The renderq run: GET /v1/generations/{run_id}.")


class ImageAnswer(BaseModel):
    """edit/process, upscale, control/process."""

    success: bool
    operation: str | None = None
    mode: str | None = None
    provider: str | None = None
    image_base64: str = Field(..., description="A data URL.")
    width: int
    height: int
    metadata: dict
    run_id: str


class SocialResult(BaseModel):
    platform: str
    format: str
    image_base64: str = Field(..., description="A data URL (image/png or image/jpeg).")
    width: int
    height: int


class SocialAnswer(BaseModel):
    success: bool
    results: list[SocialResult]
    total_optimized: int
    run_id: str


class EstimateAnswer(BaseModel):
    estimated_cost: float = Field(..., description="renderq credits.")
    currency: str = "credits"
    provider: str
    model: str | None = None
    operation: str
    num_images: int
    width: int
    height: int


class TemplateAspect(BaseModel):
    ratio: str
    width: int
    height: int
    label: str


class TemplateItem(BaseModel):
    id: str
    name: str
    category: str
    platform: str
    aspect_ratio: TemplateAspect
    description: str
    recommended_provider: str
    style_preset: str | None = None
    quality: str = Field(..., description="draft, standard or premium.")
    use_cases: list[str]


class TemplatesAnswer(BaseModel):
    templates: list[TemplateItem]
    total: int


class Provider(BaseModel):
    name: str
    models: list[str]
    capabilities: list[str]
    max_resolution: str
    cost_range: str


class ProvidersAnswer(BaseModel):
    providers: dict[str, Provider]


class OperationInfo(BaseModel):
    label: str
    description: str
    provider: str
    fields: dict[str, bool] = Field(..., description="Which of ALwrity's fields the operation takes.")


class OperationsAnswer(BaseModel):
    operations: dict[str, OperationInfo]


class AlwritySafeZone(BaseModel):
    top: float
    bottom: float
    left: float
    right: float


class FormatItem(BaseModel):
    name: str
    width: int
    height: int
    ratio: str
    safe_zone: AlwritySafeZone
    file_type: str = Field(..., description="The first file type the platform takes.")
    file_types: list[str]
    max_size_mb: float


class FormatsAnswer(BaseModel):
    formats: list[FormatItem]


class SpecFormat(BaseModel):
    name: str
    ratio: str
    size: str = Field(..., description="WIDTHxHEIGHT")


class SpecsAnswer(BaseModel):
    name: str
    formats: list[SpecFormat]
    file_types: list[str]
    max_file_size: str = Field(..., description="The largest of the platform's formats, e.g. 8MB.")


class HealthAnswer(BaseModel):
    status: str
    service: str
    version: str
    modules: dict[str, str]


class AlwrityError(BaseModel):
    detail: str
    run_id: str | None = Field(None, description="On a timeout or a failed run: the renderq run.")


_ERROR = {"model": AlwrityError}
ERRORS = {
    400: _ERROR | {"description": "Invalid request parameters (each refused field named in `detail`)"},
    401: _ERROR | {"description": "Authentication required"},
    402: _ERROR | {"description": "The caller's credits are short"},
    404: _ERROR | {"description": "Resource not found"},
    413: _ERROR | {"description": "The body or an image is over its size limit"},
    415: _ERROR | {"description": "Not JSON"},
    429: _ERROR | {"description": "Rate limit or active-run cap"},
    500: _ERROR | {"description": "The run failed; `run_id` names it"},
    503: _ERROR | {"description": "A dependency is unreachable; retry after Retry-After"},
    504: _ERROR | {"description": "The run did not end within RENDERQ_COMPAT_WAIT_SECONDS; `run_id` names it"},
}


def request_doc(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
