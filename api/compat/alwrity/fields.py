"""ALwrity's request fields, and how each becomes a field of a renderq body: names
(steps → num_inference_steps, num_variations → num_images, model → model_id), quality words
(draft/standard/premium → LOW/MID/HIGH), nulls dropped (ALwrity's "default"), and what renderq
cannot do refused by name (a named provider other than renderq, personas, reference
background/lighting images, a field the operation does not take)."""

from __future__ import annotations

from pipelines.request_parts import render_side

from ...bodies import BODIES
from ..common import refused

PREFIX = "/compat/alwrity/"
PROVIDER = "renderq"
# ALwrity's quality words ↔ renderq's tiers.
QUALITY = {"draft": "LOW", "standard": "MID", "premium": "HIGH"}
QUALITY_WORDS = {tier: word for word, tier in QUALITY.items()}
# ALwrity's field → renderq's; the reverse names renderq's fields in errors.
RENAMED = {"steps": "num_inference_steps", "num_variations": "num_images", "model": "model_id"}
NAMES = {native: theirs for theirs, native in RENAMED.items()} | {
    "image": "image_base64", "mask": "mask_base64", "style_image": "style_image_base64",
}
PROVIDERS_ELSEWHERE = ("stability", "wavespeed", "huggingface", "gemini")


def alwrity_name(field: str) -> str:
    head, _, rest = field.partition(".")
    return NAMES.get(head, head) + (f".{rest}" if rest else "")


def given(data: dict) -> dict:
    """The fields sent with a value: ALwrity's `null` means "the default"."""
    return {name: value for name, value in data.items() if value is not None}


def check_provider(provider: str | None) -> None:
    if provider is not None and provider not in ("auto", PROVIDER):
        known = " (a provider ALwrity calls)" if provider in PROVIDERS_ELSEWHERE else ""
        raise refused("provider", f"{provider!r}{known} is not served here: renderq renders with its own models "
                      f"(GET /api/image-studio/providers); send \"auto\", \"{PROVIDER}\" or null", status=400)


def exact_size(fields: dict) -> dict:
    """width/height as renderq takes them: a side that is not a multiple of 8 renders at the next
    one and is center-cropped to the exact size (output_width/output_height), as templates do."""
    out = dict(fields)
    for side, exact in (("width", "output_width"), ("height", "output_height")):
        value = out.get(side)
        if isinstance(value, int) and not isinstance(value, bool) and value % 8:
            out[side], out[exact] = render_side(value), value
    return out


def native(fields: dict, operation: str, where: str = "") -> dict:
    """ALwrity's fields (nulls dropped) under renderq's names, each one `operation`'s body takes;
    the first it does not take is refused by name. `where`: what ALwrity calls the operation."""
    out: dict = {}
    body_fields = BODIES[operation].model_fields
    aliases = _aliases(operation)
    check_provider(fields.pop("provider", None))
    for name, value in fields.items():
        target = RENAMED.get(name, name)
        if name == "quality":
            if not isinstance(value, str) or value not in QUALITY:
                raise refused("quality", f"{value!r}: one of draft, standard, premium", status=400)
            value = QUALITY[value]
        if target not in body_fields and target not in aliases:
            raise refused(name, f"{where or operation} does not take it", status=400)
        out[target] = value
    return exact_size(out)


def _aliases(operation: str) -> set[str]:
    """The names the body takes besides its fields' (image_base64, control_image_base64, …)."""
    names: set[str] = set()
    for field in BODIES[operation].model_fields.values():
        choices = getattr(field.validation_alias, "choices", ())
        names |= {choice for choice in choices if isinstance(choice, str)}
    return names


def options_fields(options: dict | None, operation: str) -> dict:
    """ALwrity's `options` ("advanced provider-specific options"): renderq is the provider, so
    they are renderq's own fields of the operation (strength, mask_color_rgba, grow_mask, …)."""
    body_fields = BODIES[operation].model_fields
    for name in options or {}:
        if name not in body_fields:
            raise refused(f"options.{name}", f"not a field of renderq's {operation}", status=400)
    return dict(options or {})
