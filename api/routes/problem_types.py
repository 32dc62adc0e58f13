"""Human-readable pages for the problem `type` URIs the API answers with."""

from __future__ import annotations

from fastapi import APIRouter

from core.problems import PROBLEM_BASE, PROBLEM_TYPES

from core.problems import ProblemError

router = APIRouter(tags=["problems"])


@router.get(PROBLEM_BASE + "{slug}", summary="What a problem type means")
def problem_type(slug: str) -> dict:
    if slug not in PROBLEM_TYPES:
        raise ProblemError("not-found", 404, detail=f"no problem type {slug}")
    title, meaning = PROBLEM_TYPES[slug]
    return {"type": PROBLEM_BASE + slug, "title": title, "description": meaning}
