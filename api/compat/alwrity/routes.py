"""The ALwrity dialect's routes: the studios that render (editing.py) and create and what
describes them (studio.py), under /compat/alwrity/api/image-studio/."""

from fastapi import APIRouter

from . import editing, studio

router = APIRouter()
router.include_router(studio.router)
router.include_router(editing.router)
