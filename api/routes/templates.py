"""/v1/templates and /v1/style-presets: what a create request's template_id and style_preset name."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from storage.templates import ID_PATTERN, StylePreset, Template

from core.problems import ProblemError

from ..problems import PROBLEM_RESPONSES
from ..services import Services, get_services

router = APIRouter(prefix="/v1", tags=["templates"])

Platform = Query(None, max_length=64, pattern=ID_PATTERN, description="instagram, facebook, twitter, linkedin, youtube, pinterest, tiktok, blog, email, …")
Category = Query(None, max_length=64, pattern=ID_PATTERN, description="social_media, blog_content, email_marketing, ad_creative, product, brand_assets")


class TemplateView(Template):
    score: float | None = Field(None, description="Search and recommend: how well the template matches (higher first).")


class TemplateList(BaseModel):
    templates: list[TemplateView]
    total: int


class StylePresetList(BaseModel):
    style_presets: list[StylePreset]
    total: int


def _listing(found: list[Template] | list[tuple[Template, float]]) -> TemplateList:
    views = [
        TemplateView(**item[0].model_dump(), score=item[1]) if isinstance(item, tuple) else TemplateView(**item.model_dump())
        for item in found
    ]
    return TemplateList(templates=views, total=len(views))


@router.get("/templates", response_model=TemplateList, summary="Templates, optionally of one platform or category")
def list_templates(
    platform: str | None = Platform, category: str | None = Category, services: Services = Depends(get_services)
) -> TemplateList:
    return _listing(services.templates.filter(platform, category))


@router.get("/templates/search", response_model=TemplateList, summary="Templates matching a query, best first")
def search_templates(
    query: str = Query(..., min_length=1, max_length=200, description="Words matched against name, tags, use cases, platform, category and description."),
    platform: str | None = Platform,
    category: str | None = Category,
    services: Services = Depends(get_services),
) -> TemplateList:
    return _listing(services.templates.search(query, platform, category))


@router.get("/templates/recommend", response_model=TemplateList, summary="Templates for a use case, best first")
def recommend_templates(
    use_case: str = Query(..., min_length=1, max_length=200, description="What the image is for, e.g. `product showcase`."),
    platform: str | None = Platform,
    services: Services = Depends(get_services),
) -> TemplateList:
    return _listing(services.templates.recommend(use_case, platform))


@router.get(
    "/templates/{template_id}", response_model=Template,
    responses={404: PROBLEM_RESPONSES[404]}, summary="One template",
)
def get_template(
    template_id: str = Path(..., max_length=64, pattern=ID_PATTERN), services: Services = Depends(get_services)
) -> Template:
    template = services.templates.template(template_id)
    if template is None:
        raise ProblemError("not-found", 404, detail=f"no template {template_id}; GET /v1/templates lists them")
    return template


@router.get("/style-presets", response_model=StylePresetList, summary="Style presets a request's style_preset may name")
def list_style_presets(services: Services = Depends(get_services)) -> StylePresetList:
    presets = list(services.templates.style_presets.values())
    return StylePresetList(style_presets=presets, total=len(presets))
