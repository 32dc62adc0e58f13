"""`template_id` and `style_preset` on a create request (ALwrity's Create Studio).

A template fills in its size, quality tier and style preset wherever the caller left them out;
a field the caller gave always wins. Size counts as one field: any of width, height,
aspect_ratio (or output_width/output_height) given replaces the template's whole size. The
style preset (given, or the template's) wraps the prompt and adds its negative prompt; "none"
turns the template's preset off. The request is then validated again, so every limit holds on
what will really be rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeVar

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from pipelines.request_parts import MAX_PROMPT, render_side
from storage.templates import ID_PATTERN, NO_STYLE, Template, TemplateCatalog

from core.problems import ProblemError

from .problems import validation_problem

SIZE_FIELDS = frozenset({"width", "height", "aspect_ratio", "output_width", "output_height"})
TEMPLATE_FIELDS = ("template_id", "style_preset")


class TemplateFields(BaseModel):
    """Mixed into the create bodies of the diffusion operations. `TEMPLATE_APPLIES` names what a
    template sets there: size, quality, style_preset (no size where the input image sets it)."""

    TEMPLATE_APPLIES: ClassVar[tuple[str, ...]] = ("size", "quality", "style_preset")

    template_id: str | None = Field(
        None, max_length=64, pattern=ID_PATTERN,
        description="A template from GET /v1/templates (e.g. linkedin_post): applies its size, quality tier and "
        "style preset; any of those given explicitly wins. Unknown ids are a 422 unknown-template problem.",
    )
    style_preset: str | None = Field(
        None, max_length=64, pattern=ID_PATTERN,
        description="A style preset from GET /v1/style-presets (photographic, cinematic, anime, …): wraps the prompt "
        "and adds its negative prompt. Overrides the template's; \"none\" turns the template's off.",
    )
    # The fields the caller sent, taken before the after-validators fill in defaults (quality →
    # steps, aspect_ratio → width/height), which pydantic then also counts as set.
    _given: frozenset[str] = PrivateAttr(frozenset())

    def model_post_init(self, context) -> None:
        super().model_post_init(context)
        self._given = frozenset(self.model_fields_set)


@dataclass(frozen=True)
class Applied:
    """What a request's template and style preset did, for the run record."""

    template_id: str | None
    style_preset: str | None
    input_prompt: str

    def record_fields(self) -> dict:
        return {"template_id": self.template_id, "style_preset": self.style_preset, "input_prompt": self.input_prompt}


def template_defaults(template: Template, applies: tuple[str, ...]) -> dict:
    """The request fields a template sets. A side that is not a multiple of 8 renders at the next
    one and is center-cropped to the template's exact size (output_width/output_height)."""
    fields: dict = {}
    if "size" in applies:
        width, height = template.aspect_ratio.width, template.aspect_ratio.height
        fields |= {"width": render_side(width), "height": render_side(height)}
        fields |= {"output_width": width} if width % 8 else {}
        fields |= {"output_height": height} if height % 8 else {}
    if "quality" in applies:
        fields["quality"] = template.quality
    if "style_preset" in applies and template.style_preset is not None:
        fields["style_preset"] = template.style_preset
    return fields


B = TypeVar("B", bound=TemplateFields)


def apply_template(body: B, catalog: TemplateCatalog) -> tuple[B, Applied | None]:
    """The body as it will render, with its template and style preset applied; 422 problems
    for an unknown template or preset, or a styled prompt over the limits."""
    if body.template_id is None and body.style_preset is None:
        return body, None
    given = body._given
    values = body.model_dump(include=set(given))
    template = None
    if body.template_id is not None:
        template = catalog.template(body.template_id)
        if template is None:
            raise ProblemError("unknown-template", 422, detail=f"no template {body.template_id!r}; GET /v1/templates lists them")
        for name, value in template_defaults(template, body.TEMPLATE_APPLIES).items():
            if name not in given and not (name in SIZE_FIELDS and SIZE_FIELDS & given):
                values[name] = value
    preset = None
    preset_id = values.get("style_preset")
    if preset_id is not None and preset_id != NO_STYLE:
        preset = catalog.style_preset(preset_id)
        if preset is None:
            where = "" if "style_preset" in given else f" (named by template {body.template_id})"
            raise ProblemError("unknown-style-preset", 422, detail=f"no style preset {preset_id!r}{where}; GET /v1/style-presets lists them")
        values["prompt"] = preset.styled_prompt(body.prompt)
        values["negative_prompt"] = preset.styled_negative(body.negative_prompt)
        for name in ("prompt", "negative_prompt"):
            if len(values[name]) > MAX_PROMPT:
                raise ProblemError(
                    "validation-error", 422,
                    detail=f"{name} with style preset {preset.id} is {len(values[name])} characters; at most {MAX_PROMPT}",
                )
    try:
        final = type(body).model_validate(values)
    except ValidationError as exc:
        raise validation_problem(exc, prefix=f"with template {body.template_id}: ") from exc
    applied = Applied(template.id if template else None, preset.id if preset else None, body.prompt)
    return final, applied
