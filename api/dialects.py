"""Every compatible API the app mounts: the OpenAI Images routes (api/openai/) and the reference
services' dialects (api/compat/<service>/, under /compat/<service>/, tagged with the service's
name), each with its error shape. A new dialect is one entry here."""

from __future__ import annotations

from fastapi import APIRouter

from .compat.alwrity.errors import SHAPE as ALWRITY_SHAPE
from .compat.alwrity.routes import router as alwrity_router
from .compat.claid.errors import SHAPE as CLAID_SHAPE
from .compat.claid.routes import router as claid_router
from .compat.errors import ErrorShape
from .compat.imagineo.fields import SHAPE as IMAGINEO_SHAPE
from .compat.imagineo.routes import router as imagineo_router
from .compat.limewire.answers import SHAPE as LIMEWIRE_SHAPE
from .compat.limewire.routes import router as limewire_router
from .compat.livepeer.routes import SHAPE as LIVEPEER_SHAPE
from .compat.livepeer.routes import router as livepeer_router
from .openai.errors import SHAPE as OPENAI_SHAPE
from .openai.routes import router as openai_router

DIALECTS: list[tuple[APIRouter, ErrorShape]] = [
    (openai_router, OPENAI_SHAPE),
    (claid_router, CLAID_SHAPE),
    (alwrity_router, ALWRITY_SHAPE),
    (imagineo_router, IMAGINEO_SHAPE),
    (limewire_router, LIMEWIRE_SHAPE),
    (livepeer_router, LIVEPEER_SHAPE),
]
