"""The playground: a page at `/` for trying renderq in a browser (RENDERQ_PLAYGROUND, on by default).

Plain HTML, CSS and JavaScript modules in api/playground/, served as they are: no build step,
nothing loaded from another origin (the Content-Security-Policy says so to the browser too).
The page calls the same /v1 API as any caller, with the API key the person types (kept in the
tab's sessionStorage), so it can do nothing a caller cannot.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

PLAYGROUND_DIR = Path(__file__).resolve().parents[1] / "playground"
ASSETS_PREFIX = "/playground"

# Scripts, styles and fonts from this origin only. Images and the download fetch may go to the
# object store's presigned URLs, which are on another origin (S3) in most deployments.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; "
    "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",  # a new renderq's page is seen at once; revalidated by ETag
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def playground() -> FileResponse:
    return FileResponse(PLAYGROUND_DIR / "index.html", media_type="text/html", headers=HEADERS)


class _PlaygroundFiles(StaticFiles):
    """The page's scripts and styles, with the page's headers."""

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def install_playground(app: FastAPI) -> None:
    """Serve the page at `/` and its files under /playground/."""
    app.include_router(router)
    app.mount(ASSETS_PREFIX, _PlaygroundFiles(directory=PLAYGROUND_DIR), name="playground")
