"""Image files of the local-disk storage backend, at signed URLs that expire."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from storage.local import FILES_ROUTE, LocalImageStore

from core.problems import ProblemError
from ..services import Services, get_services

router = APIRouter(tags=["files"], include_in_schema=False)


@router.get(FILES_ROUTE + "{key:path}")
def get_file(
    key: str,
    expires: int = Query(...),
    signature: str = Query(..., max_length=128),
    services: Services = Depends(get_services),
) -> FileResponse:
    store = services.images
    if not isinstance(store, LocalImageStore) or not store.verify(key, expires, signature):
        raise ProblemError("not-found", 404, detail="no such file, or its URL has expired")
    try:
        path = store.path_of(key)
    except ValueError:
        raise ProblemError("not-found", 404, detail="no such file")
    if not path.is_file():
        raise ProblemError("not-found", 404, detail="no such file, or it has expired")
    # Generated images are PNG; uploaded assets keep their own type (.jpeg, .webp).
    return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
