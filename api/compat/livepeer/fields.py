"""Livepeer's image-to-image fields, and how they become renderq's image-to-image body, or the
general-edit body when they ask for the instruct model (image_guidance_scale, or a model_id
naming an InstructPix2Pix model)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from storage.models_catalog import ModelCatalog, ModelEntry

from ..common import native_extras, refused

INSTRUCT = "instruct-pix2pix"
# Livepeer's documented defaults, sent as such (renderq's own differ: 25 steps).
DEFAULT_STEPS = 100
DEFAULT_IMAGE_GUIDANCE = 1.5
THEIR_NAMES = {"num_images": "num_images_per_prompt", "image_asset_id": "image"}


class ImageToImageFields(BaseModel):
    """Livepeer's form fields. Other fields are renderq's own knobs of the operation run."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(..., min_length=1, description="Text prompt(s) to guide image generation.")
    model_id: str = Field("", description="A Hugging Face id (a served model's source) or a renderq model id; empty: the default.")
    guidance_scale: float = Field(7.5, description="Classifier-free guidance.")
    image_guidance_scale: float | None = Field(None, description="Selects the instruct (InstructPix2Pix) model; default 1.5 there.")
    loras: dict[str, float] | str | None = Field(None, description='{"repo or model id": weight, …} (a JSON string in a form).')
    negative_prompt: str = ""
    num_images_per_prompt: int = Field(1, description="Images to render (renderq renders 1–4).")
    num_inference_steps: int = Field(DEFAULT_STEPS, description="Livepeer's default 100; image-to-image runs steps × strength.")
    safety_check: bool = Field(True, description="Accepted; renderq runs no safety checker (answered as not run).")
    seed: int | None = None
    strength: float | None = Field(None, description="Image-to-image: 0–1, default 0.8. Not taken by the instruct model.")
    image: str | None = Field(None, description="JSON bodies: the image as base64 or a data URL (multipart: a file part).")


def served(catalog: ModelCatalog, name: str) -> ModelEntry | None:
    """The catalog entry `name` names: its renderq id, or its source (the Hugging Face id
    Livepeer callers send)."""
    entry = catalog.get(name)
    if entry is None:
        entry = next((e for e in catalog.entries.values() if e.source == name), None)
    return entry


def _model(catalog: ModelCatalog, fields: ImageToImageFields) -> tuple[str, str]:
    """(operation, renderq model id)."""
    if fields.model_id:
        entry = served(catalog, fields.model_id)
        if entry is None or entry.kind not in ("base", "lora", INSTRUCT):
            raise refused("model_id", f"{fields.model_id!r} is not served here (GET /v1/models lists the models; a Hugging Face "
                          "id is matched against their sources)")
        if entry.kind == INSTRUCT:
            return "general-edit", entry.id
        if fields.image_guidance_scale is not None:
            raise refused("image_guidance_scale", f"{fields.model_id!r} is not an instruct model; image_guidance_scale needs one")
        return "image-to-image", entry.id
    if fields.image_guidance_scale is None:
        return "image-to-image", ""
    if catalog.first(INSTRUCT) is None:
        raise refused("image_guidance_scale", "this deployment serves no instruct (InstructPix2Pix) model to take it")
    return "general-edit", ""


def _loras(catalog: ModelCatalog, loras: dict | str | None) -> dict | str | None:
    if not isinstance(loras, dict):
        return loras  # a JSON string (renderq's body reads it) or none
    out = {}
    for name, weight in loras.items():
        entry = served(catalog, name)
        if entry is None or entry.kind != "lora":
            raise refused("loras", f"{name!r} is not a LoRA served here (GET /v1/models)")
        out[entry.id] = weight
    return out


def native_fields(catalog: ModelCatalog, fields: ImageToImageFields) -> tuple[str, dict]:
    """(operation, its native body's fields)."""
    operation, model_id = _model(catalog, fields)
    out: dict = {
        "prompt": fields.prompt, "guidance_scale": fields.guidance_scale, "negative_prompt": fields.negative_prompt,
        "num_images": fields.num_images_per_prompt, "num_inference_steps": fields.num_inference_steps,
    }
    out |= {"model_id": model_id} if model_id else {}
    out |= {"seed": fields.seed} if fields.seed is not None else {}
    out |= {"image": fields.image} if fields.image is not None else {}
    if operation == "general-edit":
        for name in ("strength", "loras"):
            if getattr(fields, name):
                raise refused(name, "the instruct model (selected by image_guidance_scale or model_id) does not take it")
        image_guidance = fields.image_guidance_scale
        out["image_guidance_scale"] = DEFAULT_IMAGE_GUIDANCE if image_guidance is None else image_guidance
    else:
        out["strength"] = 0.8 if fields.strength is None else fields.strength
        loras = _loras(catalog, fields.loras)
        out |= {"loras": loras} if loras else {}
    return operation, out | native_extras(fields.model_extra or {}, operation, blocked=set(out))
