"""Templates and style presets (ALwrity's Image Studio), read from two JSON data files.

    templates.json     {"templates": [{"id": "linkedin_post", "name": "LinkedIn Post",
                        "platform": "linkedin", "category": "social_media",
                        "aspect_ratio": {"ratio": "1.91:1", "width": 1200, "height": 628, "label": "Landscape"},
                        "quality": "HIGH", "style_preset": "photographic", "description": "…",
                        "use_cases": ["Thought leadership", …], "tags": ["feed", …]}, …]}
    style_presets.json {"style_presets": [{"id": "photographic", "name": "Photographic",
                        "prompt": "{prompt}, professional photography, …", "negative_prompt": "…"}, …]}

The files shipped in core/data/ are the defaults; `RENDERQ_TEMPLATES_FILE` and
`RENDERQ_STYLE_PRESETS_FILE` point at an operator's own. A template naming a style preset the
presets file lacks stops start-up. Search and recommendation rank on the words of each field.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from core.settings import Settings

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
NO_STYLE = "none"  # a request's style_preset "none" turns the template's preset off

# The quality tiers of api/quality.py.
QualityTier = Literal["LOW", "MID", "HIGH"]


class StylePreset(BaseModel):
    id: str = Field(..., pattern=ID_PATTERN)
    name: str
    description: str = ""
    prompt: str = Field(..., description="The prompt's template; `{prompt}` is the caller's prompt.")
    negative_prompt: str = Field("", description="Added after the caller's negative prompt.")

    @field_validator("prompt")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if value.count("{prompt}") != 1 or re.search(r"\{(?!prompt\})", value):
            raise ValueError("a style preset's prompt holds `{prompt}` exactly once and no other braces")
        return value

    def styled_prompt(self, prompt: str) -> str:
        """The caller's prompt inside the preset's; with no prompt (variations, outpaint), the
        preset's words alone ("pixel art of {prompt}, 16-bit" → "pixel art, 16-bit")."""
        if not prompt.strip():
            return re.sub(r"\s*(?:\bof\s+)?\{prompt\}", "", self.prompt).strip(" ,")
        return self.prompt.replace("{prompt}", prompt.strip())

    def styled_negative(self, negative_prompt: str) -> str:
        """The caller's negative prompt first, then the preset's."""
        return ", ".join(part for part in (negative_prompt.strip(), self.negative_prompt) if part)


class TemplateSize(BaseModel):
    ratio: str = Field(..., description="Aspect ratio as the platform states it, e.g. 1.91:1.")
    width: int = Field(..., ge=64, le=2048, description="Exact output width in pixels.")
    height: int = Field(..., ge=64, le=2048, description="Exact output height in pixels.")
    label: str = ""


class Template(BaseModel):
    id: str = Field(..., pattern=ID_PATTERN, examples=["linkedin_post"])
    name: str
    platform: str = Field(..., pattern=ID_PATTERN, description="instagram, facebook, twitter, linkedin, youtube, …")
    category: str = Field(..., pattern=ID_PATTERN, description="social_media, blog_content, ad_creative, …")
    aspect_ratio: TemplateSize = Field(..., description="The exact output size the template applies.")
    quality: QualityTier = Field(..., description="Quality tier applied: LOW, MID or HIGH (see `quality`).")
    style_preset: str | None = Field(None, description="Style preset applied (GET /v1/style-presets).")
    description: str = ""
    use_cases: list[str] = Field(default_factory=list, description="What the template is for (GET /v1/templates/recommend matches these).")
    tags: list[str] = Field(default_factory=list, description="Keywords GET /v1/templates/search matches.")


# --- ranking -------------------------------------------------------------------------------

STOPWORDS = frozenset("a an and as at by for from in into of on or the to with my our your".split())
# Weight of a query word found in each field of a template (search).
SEARCH_WEIGHTS = {"name": 5.0, "platform": 4.0, "tags": 3.0, "use_cases": 3.0, "category": 2.0, "description": 1.0}


def words(text: str) -> list[str]:
    """Lower-case words, stop words dropped, a plural `s` taken off (posts → post)."""
    found = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        found.append(word)
    return found


def _phrase(text: str) -> str:
    return " ".join(words(text))


def _field_words(template: Template) -> dict[str, set[str]]:
    return {
        "name": set(words(template.name)) | set(words(template.id.replace("_", " "))),
        "platform": set(words(template.platform)),
        "tags": {w for tag in template.tags for w in words(tag)},
        "use_cases": {w for use in template.use_cases for w in words(use)},
        "category": set(words(template.category.replace("_", " "))),
        "description": set(words(template.description)),
    }


def _match(query_word: str, field: set[str]) -> float:
    """1 for the word itself, 0.5 for a word it begins (`thumb` → `thumbnail`), else 0."""
    if query_word in field:
        return 1.0
    if len(query_word) >= 3 and any(word.startswith(query_word) for word in field):
        return 0.5
    return 0.0


def _overlap(query: set[str], other: set[str]) -> float:
    """Jaccard similarity of two word sets."""
    return len(query & other) / len(query | other) if query and other else 0.0


class TemplateCatalog:
    """The templates and style presets a deployment offers."""

    def __init__(self, templates: list[Template], style_presets: list[StylePreset]) -> None:
        self.style_presets = {preset.id: preset for preset in style_presets}
        self.templates = {template.id: template for template in templates}
        for template in templates:
            if template.style_preset is not None and template.style_preset not in self.style_presets:
                raise ValueError(f"template {template.id}: no style preset {template.style_preset!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> "TemplateCatalog":
        return _load(settings.templates_file, settings.style_presets_file)

    def template(self, template_id: str) -> Template | None:
        return self.templates.get(template_id)

    def style_preset(self, preset_id: str) -> StylePreset | None:
        return self.style_presets.get(preset_id)

    def filter(self, platform: str | None = None, category: str | None = None) -> list[Template]:
        return [
            t for t in self.templates.values()
            if (platform is None or t.platform == platform.lower()) and (category is None or t.category == category.lower())
        ]

    def search(self, query: str, platform: str | None = None, category: str | None = None) -> list[tuple[Template, float]]:
        """Templates whose name, platform, tags, use cases, category or description hold words
        of the query, best first. A word counts at its best field's weight; the sum is scaled
        by the share of the query's words found (a template matching every word ranks above one
        matching a single heavy word), plus a bonus when the whole query is the template's id
        or name (10) or appears in its name (5) or one of its use cases (4)."""
        query_words = list(dict.fromkeys(words(query)))
        phrase = _phrase(query)
        ranked = []
        for template in self.filter(platform, category):
            fields = _field_words(template)
            found = [max(SEARCH_WEIGHTS[name] * _match(word, fields[name]) for name in SEARCH_WEIGHTS) for word in query_words]
            matched = sum(1 for score in found if score)
            if not matched:
                continue
            score = sum(found) * matched / len(query_words)
            if phrase in (_phrase(template.id.replace("_", " ")), _phrase(template.name)):
                score += 10
            elif phrase in _phrase(template.name):
                score += 5
            elif any(phrase in _phrase(use) for use in template.use_cases):
                score += 4
            ranked.append((template, round(score, 3)))
        return sorted(ranked, key=lambda item: -item[1])  # stable: catalog order breaks ties

    def recommend(self, use_case: str, platform: str | None = None) -> list[tuple[Template, float]]:
        """Templates for a use case, best first: how well the use case matches the template's
        best-matching use case (1 for the same words, else their word overlap, Jaccard), plus
        0.3 × the share of its words among the tags and 0.1 × among the description's words."""
        query = set(words(use_case))
        ranked = []
        for template in self.filter(platform):
            fields = _field_words(template)
            best_use = max((_overlap(query, set(words(use))) for use in template.use_cases), default=0.0)
            score = best_use + 0.3 * len(query & fields["tags"]) / max(len(query), 1) \
                + 0.1 * len(query & fields["description"]) / max(len(query), 1)
            if score > 0:
                ranked.append((template, round(score, 3)))
        return sorted(ranked, key=lambda item: -item[1])


def _read(path: Path, key: str) -> list[dict]:
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get(key), list):
        raise ValueError(f"{path}: expected {{\"{key}\": [...]}}")
    return raw[key]


@lru_cache(maxsize=8)
def _load(templates_file: Path, style_presets_file: Path) -> TemplateCatalog:
    presets = [StylePreset.model_validate(item) for item in _read(style_presets_file, "style_presets")]
    templates = [Template.model_validate(item) for item in _read(templates_file, "templates")]
    for kind, items in (("template", templates), ("style preset", presets)):
        ids = [item.id for item in items]
        if len(ids) != len(set(ids)) or NO_STYLE in ids and kind == "style preset":
            raise ValueError(f"{kind} ids must be unique (and a style preset may not be called {NO_STYLE!r})")
    return TemplateCatalog(templates, presets)
