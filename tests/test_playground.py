"""The playground page at `/`, in-process: served (or not, with RENDERQ_PLAYGROUND off), loading
nothing from another origin, and calling only routes the API has. What it does in a browser is
tests/test_playground_browser.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from fastapi.testclient import TestClient
from starlette.routing import Match

from api.app import create_app
from api.routes.playground import PLAYGROUND_DIR
from tests.unit_services import unit_services


def client(tmp_path: Path, **settings) -> TestClient:
    return TestClient(create_app(unit_services(tmp_path, **settings)), raise_server_exceptions=False)


class _References(HTMLParser):
    """Every URL an element of the page loads or links to."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _page_references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


def _script_imports(source: str) -> list[str]:
    return re.findall(r"""^\s*import\b[^;]*?from\s+["']([^"']+)["']""", source, re.M)


def _css_urls(source: str) -> list[str]:
    return re.findall(r"""url\(\s*["']?([^"')]+)""", source)


def test_the_playground_is_served_at_the_root(tmp_path):
    with client(tmp_path) as api:
        page = api.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>renderq playground</title>" in page.text
        # The browser is told, too, that scripts and styles come from this origin only.
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        script = api.get("/playground/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert script.headers["content-security-policy"] == policy
        missing = api.get("/playground/nothing.js")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        # Not part of the API: the OpenAPI document does not list it.
        assert "/" not in api.get("/openapi.json").json()["paths"]


def test_everything_the_page_loads_is_served_by_renderq_itself(tmp_path):
    """No CDN, no build step: every reference is a path on this origin, and each answers 200."""
    with client(tmp_path) as api:
        html = api.get("/").text
        references = _page_references(html)
        scripts = sorted(PLAYGROUND_DIR.glob("*.js"))
        for script in scripts:
            references += [f"/playground/{name.removeprefix('./')}" for name in _script_imports(script.read_text())]
        references += [url for url in _css_urls((PLAYGROUND_DIR / "app.css").read_text()) if not url.startswith("data:")]
        assert "/playground/app.js" in references and "/playground/app.css" in references
        assert len([url for url in references if url.endswith(".js")]) >= len(scripts)  # every module is imported
        for url in references:
            assert url.startswith("/") and not url.startswith("//"), f"{url} is not on renderq's own origin"
            answer = api.get(url)
            assert answer.status_code == 200, f"{url}: {answer.status_code}"
    for path in PLAYGROUND_DIR.iterdir():
        # No absolute URL anywhere (an SVG's XML namespace names, loads nothing).
        text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"\bhttps?://|//cdn|@import", text), f"{path.name} refers to another origin"


def test_the_page_calls_only_routes_the_api_has(tmp_path):
    app = create_app(unit_services(tmp_path))
    calls = set()
    for script in PLAYGROUND_DIR.glob("*.js"):
        for literal in re.findall(r"""[`"'](/v1/[^`"'?]*)""", script.read_text()):
            calls.add(re.sub(r"\$\{[^}]+\}", "x", literal))
    assert {"/v1/generations", "/v1/assets", "/v1/models", "/v1/generations/x/events", "/v1/generations/x/cancel",
            "/v1/generations/x/retry", "/v1/x"} <= calls
    operations = ("image-to-image", "inpaint", "variations", "upscale", "remove-background")
    concrete = {path.replace("/v1/x", f"/v1/{op}") if path == "/v1/x" else path for path in calls for op in operations}
    for path in concrete:
        scope = {"type": "http", "path": path.replace("/x", "/gen_0123456789abcdef01234567"), "method": "GET"}
        post = scope | {"method": "POST"}
        assert any(route.matches(s)[0] == Match.FULL for route in app.routes for s in (scope, post)), path


def test_the_playground_can_be_turned_off(tmp_path):
    with client(tmp_path, playground=False) as api:
        for path in ("/", "/playground/app.js"):
            answer = api.get(path)
            assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json", path
        assert api.get("/healthz").status_code == 200  # the API itself is untouched
