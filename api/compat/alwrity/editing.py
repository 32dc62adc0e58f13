"""ALwrity's Edit, Upscale, Control and Social studios: each request becomes one renderq
operation run (POST /v1/{operation}'s body), waited for, and answered with its image as a data
URL; the operations' metadata (GET edit/operations, control/operations) lists what renderq runs."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from storage.image_codec import MEDIA_TYPES, converted
from storage.records import RunRecord

from ...inputs import read_body
from ...services import Services, services_of
from ..common import refused, submit
from ..runs import completed, data_url, images_of, seconds_taken
from .fields import PROVIDER, given, native, options_fields
from .schemas import (
    ERRORS, ControlRequest, EditRequest, ImageAnswer, OperationsAnswer, SocialAnswer, SocialRequest, UpscaleRequest,
    request_doc,
)

router = APIRouter(prefix="/compat/alwrity/api/image-studio", tags=["alwrity"])

# ALwrity's operation → (renderq's, label, description, the ALwrity fields it takes).
EDITS = {
    "remove_background": ("remove-background", "Remove Background", "Isolate the main subject", ()),
    "inpaint": ("inpaint", "Inpaint & Fix", "Edit specific regions using prompts and optional masks", ("prompt", "mask", "negative_prompt")),
    "outpaint": ("outpaint", "Outpaint", "Extend the canvas in any direction", ("prompt", "negative_prompt", "expansion")),
    "search_replace": ("search-replace", "Search & Replace", "Find an object by words and replace it", ("prompt", "negative_prompt", "search_prompt")),
    "search_recolor": ("search-recolor", "Search & Recolor", "Find an object by words and recolor it", ("prompt", "negative_prompt", "select_prompt")),
    "general_edit": ("general-edit", "General Edit", "Edit the whole image by an instruction", ("prompt", "negative_prompt")),
}
CONTROLS = {
    "sketch": ("sketch", "Sketch to Image", "Render an image that follows a drawing", ("prompt", "control_strength")),
    "structure": ("structure", "Structure", "Keep the edges of the control image", ("prompt", "control_strength")),
    "style": ("style", "Style", "Render a prompt in the style of the control image", ("prompt", "fidelity", "aspect_ratio")),
    "style_transfer": ("style-transfer", "Style Transfer", "Restyle the control image after a style image",
                       ("prompt", "style_image", "style_strength", "composition_fidelity", "change_strength")),
}
_EDIT_FLAGS = ("prompt", "mask", "negative_prompt", "search_prompt", "select_prompt", "background", "lighting", "expansion")
_EXPANSION = ("expand_left", "expand_right", "expand_up", "expand_down")
# Upscale: ALwrity's modes → renderq's; presets → factors.
MODES = {"auto": "auto", "fast": "fast", "conservative": "model"}
PRESETS = {"web": 2, "social": 2, "print": 4}


def _operation(data: dict, known: dict) -> tuple[str, str]:
    name = data.pop("operation", None)
    if name not in known:
        raise refused("operation", f"{name!r}: one of {', '.join(known)}", status=400)
    return name, known[name][0]


def _output_format(data: dict) -> str:
    wanted = str(data.pop("output_format", "png")).lower()
    fmt = {"jpg": "jpeg"}.get(wanted, wanted)
    if fmt not in MEDIA_TYPES:
        raise refused("output_format", f"{wanted!r}: one of png, jpg, webp", status=400)
    return fmt


def _image_answer(services: Services, record: RunRecord, output_format: str) -> tuple[str, int, int]:
    """(data URL, width, height) of the run's first image, in `output_format` (blocking)."""
    image = images_of(record)[0]
    if output_format == "png" or image.content_type != "image/png":
        return data_url(services, image), image.width, image.height
    data = converted(services.images.get(image.key), output_format, None)
    return f"data:{MEDIA_TYPES[output_format]};base64,{base64.b64encode(data).decode()}", image.width, image.height


async def _run(services: Services, operation: str, fields: dict, output_format: str) -> tuple[RunRecord, str, int, int]:
    record = await completed(services, await submit(services, operation, fields))
    url, width, height = await run_in_threadpool(_image_answer, services, record, output_format)
    return record, url, width, height


@router.post("/edit/process", summary="ALwrity: an Edit Studio operation", response_model=ImageAnswer, response_model_exclude_none=True, responses=ERRORS,
             openapi_extra=request_doc(EditRequest))
async def edit(request: Request) -> dict:
    services = services_of(request)
    data = given((await read_body(request, services.settings))[0])
    name, operation = _operation(data, EDITS)
    output_format = _output_format(data)
    for field in ("background_image_base64", "lighting_image_base64"):
        if field in data:
            raise refused(field, "renderq has no background replacement or relighting; send null", status=400)
    if operation != "outpaint":  # ALwrity sends 0 for the expansions whatever the operation
        data = {k: v for k, v in data.items() if not (k in _EXPANSION and v == 0)}
    options = options_fields(data.pop("options", None), operation)
    record, url, width, height = await _run(services, operation, native(data, operation, name) | options, output_format)
    return {"success": True, "operation": name, "provider": PROVIDER, "image_base64": url, "width": width, "height": height,
            "metadata": {"operation": name, "processing_time": seconds_taken(record)}, "run_id": record.run_id}


def _operations(known: dict, flags: tuple[str, ...]) -> dict:
    return {"operations": {name: {"label": label, "description": description, "provider": PROVIDER,
                                  "fields": {flag: flag in takes for flag in flags}}
                           for name, (_, label, description, takes) in known.items()}}


@router.get("/edit/operations", summary="ALwrity: the Edit Studio operations", response_model=OperationsAnswer, responses=ERRORS)
def edit_operations() -> dict:
    return _operations(EDITS, _EDIT_FLAGS)


@router.post("/upscale", summary="ALwrity: upscale an image", response_model=ImageAnswer, response_model_exclude_none=True, responses=ERRORS,
             openapi_extra=request_doc(UpscaleRequest))
async def upscale(request: Request) -> dict:
    services = services_of(request)
    data = given((await read_body(request, services.settings))[0])
    mode = data.pop("mode", "auto")
    if mode not in MODES:
        reason = "renderq has no generative (creative) upscaler" if mode == "creative" else "unknown mode"
        raise refused("mode", f"{mode!r}: {reason}; one of fast, conservative, auto", status=400)
    if "prompt" in data:
        raise refused("prompt", "renderq's upscalers take no prompt (conservative keeps the image's details as it is); "
                      "send null", status=400)
    preset = data.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise refused("preset", f"{preset!r}: one of {', '.join(PRESETS)}", status=400)
        if "target_width" not in data and "target_height" not in data:
            data["upscale_factor"] = PRESETS[preset]
    data["mode"] = MODES[mode]
    record, url, width, height = await _run(services, "upscale", native(data, "upscale"), "png")
    source = services.assets.get(record.request["image_asset_id"])
    return {"success": True, "mode": mode, "image_base64": url, "width": width, "height": height,
            "metadata": {"preset": preset, "original_width": source.width, "original_height": source.height,
                         "upscale_factor": round(width / source.width, 3)}, "run_id": record.run_id}


@router.post("/control/process", summary="ALwrity: a Control Studio operation", response_model=ImageAnswer, response_model_exclude_none=True, responses=ERRORS,
             openapi_extra=request_doc(ControlRequest))
async def control(request: Request) -> dict:
    services = services_of(request)
    data = given((await read_body(request, services.settings))[0])
    name, operation = _operation(data, CONTROLS)
    output_format = _output_format(data)
    record, url, width, height = await _run(services, operation, native(data, operation, name), output_format)
    metadata = {"operation": name} | {k: record.request[k] for k in ("control_strength", "fidelity", "style_strength") if k in record.request}
    return {"success": True, "operation": name, "provider": PROVIDER, "image_base64": url, "width": width, "height": height,
            "metadata": metadata, "run_id": record.run_id}


@router.get("/control/operations", summary="ALwrity: the Control Studio operations", response_model=OperationsAnswer,
            responses=ERRORS)
def control_operations() -> dict:
    return _operations(CONTROLS, ("prompt", "control_strength", "fidelity", "style_image", "style_strength",
                                  "composition_fidelity", "change_strength", "aspect_ratio"))


@router.post("/social/optimize", summary="ALwrity: cut an image to social platforms' formats", response_model=SocialAnswer,
             responses=ERRORS,
             openapi_extra=request_doc(SocialRequest))
async def social(request: Request) -> dict:
    services = services_of(request)
    data = given((await read_body(request, services.settings))[0])
    record = await completed(services, await submit(services, "social-formats", native(data, "social-formats", "social/optimize")))
    images = images_of(record)
    urls = await run_in_threadpool(lambda: [data_url(services, image) for image in images])
    results = [{"platform": image.platform, "format": image.format_name, "image_base64": url, "width": image.width,
                "height": image.height} for image, url in zip(images, urls)]
    return {"success": True, "results": results, "total_optimized": len(results), "run_id": record.run_id}
