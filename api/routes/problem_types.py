"""Human-readable pages for the problem `type` URIs the API answers with."""

from __future__ import annotations

from fastapi import APIRouter

from core.problems import PROBLEM_BASE, PROBLEM_TYPES, ProblemError

from ..problems import PROBLEM_RESPONSES

router = APIRouter(tags=["problems"])


@router.get(PROBLEM_BASE + "{slug}", summary="What a problem type means", responses={404: PROBLEM_RESPONSES[404]})
def problem_type(slug: str) -> dict:
    if slug not in PROBLEM_TYPES:
        raise ProblemError("not-found", 404, detail=f"no problem type {slug}")
    title, meaning = PROBLEM_TYPES[slug]
    return {"type": PROBLEM_BASE + slug, "title": title, "description": meaning}
