"""README.md and docs/*.md stay true: their requests are sent, their commands parse, their
links resolve, and docs/configuration.md is what the settings object says.

Every fenced code block of README.md and docs/*.md is read:

- every `curl` command must parse (shell quoting, known options, one URL); one naming the API
  (`localhost:8000/…`, `127.0.0.1:8000/…`, `$API/…`) must name a route the app has for its
  method, and a `-d` body must be JSON with a JSON content type;
- the requests that can be sent are sent, in their block's order, to the app built in this
  process (fakeredis, in-memory broker, local disk: tests/unit_services.py) and must answer
  below 400: every `-d` JSON body, every multipart `-F` form, `--data-binary @*.png`, and every
  GET whose path names no run, batch or asset;
- ```json blocks must parse and ```python blocks compile, with their `from <room> import name`
  resolving; every `renderq …` command line in a shell block must parse with the command's own
  argument parser (parsed, never run);
- every relative link resolves to a file (and a heading, for `#anchor`s into markdown), and
  docs/configuration.md is exactly what `python -m core.settings_doc` prints.

Not sent (checked for well-formedness only): commands whose URL holds a placeholder (`gen_…`,
`batch_…`, `<next_cursor>`), `curl -N` event streams, `--data-binary @file` of a file that is
not a PNG, and URLs outside the API (`"<image_url>"` downloads).

Placeholder substitutions made before sending (and nothing else):

- `ast_…` (in a JSON string or a form value) → the id of a 64×64 PNG this test uploads first,
  as the same caller;
- `data:image/png;base64,…` → that PNG as a whole data URL;
- `@<name>.png` in `-F` / `--data-binary` → that PNG's bytes;
- `$KEY` → a real API key of tenant `acme` (`$API` and the host are dropped: only the path is
  sent).

The app serves the example catalog of docs/operations.md (the one ```json block with a
"models" list), so every model id a doc request names must be in that catalog. Network
boundaries are cut, not faked: webhook and destination URLs are not resolved
(`*_ALLOW_PRIVATE`), and the registration check of a destination bucket (a HEAD and a test
write to S3) is replaced by a no-op. `Prefer: wait` is capped at 0 s.
"""

from __future__ import annotations

import ast
import base64
import importlib
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OUR_ROOMS = {"core", "api", "worker", "pipelines", "storage", "client", "ops", "devkit", "bench", "tests"}
HEAVY = {"torch", "diffusers", "transformers", "numpy", "cv2", "PIL", "celery", "redis", "boto3", "botocore", "fastapi"}
REGENERATE = "python -m core.settings_doc > docs/configuration.md"

ASSET_PLACEHOLDER = "ast_…"
DATA_URL_PLACEHOLDER = "data:image/png;base64,…"
NOT_SENT_MARKS = ("…", "<", "gen_", "batch_", "ast_")  # in a URL: it names something this test does not have


# --- reading the docs ---------------------------------------------------------------------

@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    lines: list[str]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)\s*$")


def read_doc(path: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """The fenced code blocks of a markdown file, and its other lines (number, text)."""
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    current: Block | None = None
    fence = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = FENCE.match(line)
        if current is None and match:
            fence, current = match.group(1), Block(path, number, match.group(2).lower(), [])
        elif current is not None and line.strip() == fence:
            blocks.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
        else:
            prose.append((number, line))
    assert current is None, f"{current.where}: code block never closed"
    return blocks, prose


ALL_BLOCKS = [block for path in DOC_FILES for block in read_doc(path)[0]]


# --- curl commands --------------------------------------------------------------------------

class BadCurl(ValueError):
    pass


@dataclass
class Curl:
    path: Path
    line: int
    argv: list[str]
    method: str = "GET"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    data: str | None = None
    data_binary: str | None = None
    form: list[tuple[str, str]] = field(default_factory=list)
    output: str | None = None
    stream: bool = False

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def api_path(self) -> str | None:
        """Path and query on the API, or None for a URL elsewhere."""
        match = re.fullmatch(r"(?:https?://)?(?:localhost|127\.0\.0\.1)(?::\d+)?(/\S*)|\$API(/\S*)", self.url)
        return (match.group(1) or match.group(2)) if match else None


FLAGS = {"-s", "--silent", "-S", "-i", "-L", "-f", "-N", "--no-buffer"}
WITH_VALUE = {"-X", "--request", "-H", "--header", "-d", "--data", "--data-raw", "--data-binary", "-F", "--form",
              "-o", "--output"}


def parse_curl(argv: list[str], path: Path, line: int) -> Curl:
    curl = Curl(path, line, argv)
    method, positional = None, []
    args = argv[1:]
    while args:
        arg = args.pop(0)
        if arg.startswith("-X") and len(arg) > 2:
            method = arg[2:]
            continue
        if arg in FLAGS:
            curl.stream |= arg in ("-N", "--no-buffer")
            continue
        if arg in WITH_VALUE:
            if not args:
                raise BadCurl(f"{arg} without a value")
            value = args.pop(0)
            if arg in ("-X", "--request"):
                method = value
            elif arg in ("-H", "--header"):
                name, colon, header = value.partition(":")
                if not colon or not name.strip() or " " in name.strip():
                    raise BadCurl(f"header {value!r} is not 'Name: value'")
                curl.headers[name.strip()] = header.strip()
            elif arg in ("-d", "--data", "--data-raw"):
                curl.data = value
            elif arg == "--data-binary":
                curl.data_binary = value
            elif arg in ("-F", "--form"):
                name, equals, form_value = value.partition("=")
                if not equals or not name:
                    raise BadCurl(f"form field {value!r} is not name=value")
                curl.form.append((name, form_value))
            else:
                curl.output = value
            continue
        if arg.startswith("-"):
            raise BadCurl(f"unknown curl option {arg} (add it to tests/test_docs.py if it is right)")
        positional.append(arg)
    if len(positional) != 1:
        raise BadCurl(f"one URL expected, found {positional}")
    curl.url = positional[0]
    has_body = curl.data is not None or curl.data_binary is not None or bool(curl.form)
    curl.method = method or ("POST" if has_body else "GET")  # as curl does
    return curl


def curls_of(block: Block) -> list[Curl | BadCurl]:
    """The curl commands of a block (a `$ ` prompt allowed; `\\` continuations and quoted
    strings spanning lines joined), each parsed or the reason it does not parse."""
    found: list[Curl | BadCurl] = []
    index = 0
    while index < len(block.lines):
        text = block.lines[index].lstrip()
        text = text[2:].lstrip() if text.startswith("$ ") else text
        if not re.match(r"curl\s", text):
            index += 1
            continue
        start = index
        while True:
            try:
                if text.rstrip().endswith("\\"):
                    raise ValueError("continued on the next line")
                argv = shlex.split(text.replace("\\\n", " "), comments=True)
                break
            except ValueError as exc:
                index += 1
                if index >= len(block.lines):
                    found.append(BadCurl(f"{block.path.relative_to(ROOT)}:{block.line + 1 + start}: {exc}"))
                    return found
                text += "\n" + block.lines[index]
        line = block.line + 1 + start
        try:
            found.append(parse_curl(argv, block.path, line))
        except BadCurl as exc:
            found.append(BadCurl(f"{block.path.relative_to(ROOT)}:{line}: {exc}"))
        index += 1
    return found


CURL_BLOCKS = [block for block in ALL_BLOCKS if curls_of(block)]


def sent_as_request(curl: Curl) -> bool:
    path = curl.api_path
    if path is None or curl.stream or any(mark in path for mark in NOT_SENT_MARKS):
        return False
    if curl.data_binary is not None and not curl.data_binary.endswith(".png"):
        return False
    return True


# --- the app the requests go to -------------------------------------------------------------

def tiny_png(size: int = 64) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (size, size))
    image.putdata([((x * 4) % 256, (y * 4) % 256, ((x + y) * 2) % 256) for y in range(size) for x in range(size)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def docs_catalog() -> dict:
    catalogs = []
    for block in ALL_BLOCKS:
        if block.lang == "json":
            try:
                parsed = json.loads(block.text)
            except ValueError:
                continue  # test_json_blocks_parse names it
            if isinstance(parsed, dict) and "models" in parsed:
                catalogs.append((block, parsed))
    assert len(catalogs) == 1, f"one example catalog expected in the docs, found {[b.where for b, _ in catalogs]}"
    return catalogs[0][1]


@dataclass
class DocsApi:
    client: object
    key: str
    png: bytes
    assets: dict[str, str] = field(default_factory=dict)

    def headers(self, curl: Curl) -> dict[str, str]:
        return {name: value.replace("$KEY", self.key) for name, value in curl.headers.items()}

    def asset_for(self, headers: dict[str, str]) -> str:
        """A PNG asset of the caller these headers name (assets belong to a tenant)."""
        auth = {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")}
        caller = json.dumps(auth, sort_keys=True)
        if caller not in self.assets:
            response = self.client.post("/v1/assets", content=self.png, headers={"content-type": "image/png", **auth})
            assert response.status_code == 201 or response.status_code == 200, response.text
            self.assets[caller] = response.json()["asset_id"]
        return self.assets[caller]

    def substitute(self, text: str, headers: dict[str, str]) -> str:
        if ASSET_PLACEHOLDER in text:
            text = text.replace(ASSET_PLACEHOLDER, self.asset_for(headers))
        data_url = "data:image/png;base64," + base64.b64encode(self.png).decode()
        return text.replace(DATA_URL_PLACEHOLDER, data_url)

    def send(self, curl: Curl):
        headers = self.headers(curl)
        if curl.data is not None:
            body = self.substitute(curl.data, headers)
            return self.client.request(curl.method, curl.api_path, content=body.encode(), headers=headers)
        if curl.data_binary is not None:
            return self.client.request(curl.method, curl.api_path, content=self.png, headers=headers)
        if curl.form:
            fields, files = {}, {}
            for name, value in curl.form:
                if value.startswith("@"):
                    assert value.endswith(".png"), f"{curl.where}: only PNG file parts can be sent ({value})"
                    files[name] = (value[1:], self.png, "image/png")
                else:
                    fields[name] = self.substitute(value, headers)
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            return self.client.request(curl.method, curl.api_path, data=fields, files=files or None, headers=headers)
        return self.client.request(curl.method, curl.api_path, headers=headers)


@pytest.fixture(scope="module")
def docs_api(tmp_path_factory):
    from cryptography.fernet import Fernet
    from fastapi.testclient import TestClient

    from api.app import create_app
    from storage.destinations import DestinationClients
    from tests.unit_services import unit_services

    tmp_path = tmp_path_factory.mktemp("docs")
    catalog = tmp_path / "models.json"
    catalog.write_text(json.dumps(docs_catalog()))
    services = unit_services(
        tmp_path,
        models_file=catalog,
        default_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        max_prefer_wait=0,
        webhook_allow_private=True,
        destination_allow_private=True,
        secrets_key=Fernet.generate_key().decode(),
    )
    _, key = services.keys.create("acme", name="docs")
    patch = pytest.MonkeyPatch()
    patch.setattr(DestinationClients, "check", lambda self, destination: None)  # no S3 to HEAD and write to
    try:
        with TestClient(create_app(services), raise_server_exceptions=False) as client:
            yield DocsApi(client, key, tiny_png())
    finally:
        patch.undo()


def has_route(app, method: str, path: str) -> bool:
    from starlette.routing import Match

    scope = {"type": "http", "method": method, "path": path.split("?", 1)[0], "root_path": ""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


# --- the tests --------------------------------------------------------------------------------

def test_docs_are_where_the_readme_says():
    expected = {"operations", "callers-guide", "configuration", "deployment", "architecture", "benchmarks", "testing",
                "compat-claid", "compat-alwrity", "compat-imagineo", "compat-limewire", "compat-livepeer"}
    assert expected <= {path.stem for path in DOC_FILES}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250, "README.md: keep it to 250 lines; reference goes in docs/"


def test_configuration_page_is_generated_from_the_settings():
    from core.settings_doc import render

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == render(), f"docs/configuration.md is out of date with core/settings.py: run `{REGENERATE}`"


def test_every_setting_has_a_description_and_no_secret_is_shown():
    from pydantic import SecretStr

    from core.settings import Settings
    from core.settings_doc import render

    page = render()
    for name, info in Settings.model_fields.items():
        assert (info.description or "").strip(), f"core/settings.py: {name} needs Field(description=...)"
        default = info.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            assert default.get_secret_value() not in page, f"{name}'s default value is printed"
    assert str(ROOT) not in page, "absolute paths of this machine in docs/configuration.md"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_settings_page_generator_imports_nothing_heavy():
    """`python -m core.settings_doc` must run without torch (read statically: other tests of
    this process have imported torch already)."""
    seen, todo = set(), ["core.settings_doc"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        file = ROOT / (module.replace(".", "/") + ".py")
        if not file.exists():
            file = ROOT / module.replace(".", "/") / "__init__.py"
        for name in _imports(file):
            top = name.split(".")[0]
            assert top not in HEAVY, f"{module} imports {name}"
            if top in OUR_ROOMS:
                assert top == "core", f"{module} imports {name}: the generator may only use core/"
                todo.append(name)


def curl_problems(curl: Curl | BadCurl, app) -> list[str]:
    if isinstance(curl, BadCurl):
        return [str(curl)]
    path = curl.api_path
    if path is None:
        if curl.method == "GET" and curl.output:
            return []
        return [f"{curl.where}: {curl.url!r} is not the API; only downloads (-o) may go elsewhere"]
    problems = []
    if not has_route(app, curl.method, path):
        problems.append(f"{curl.where}: the API has no route {curl.method} {path}")
    if curl.data is not None:
        content_type = {k.lower(): v for k, v in curl.headers.items()}.get("content-type", "")
        if "json" not in content_type:
            problems.append(f"{curl.where}: curl -d sends a form; add -H 'content-type: application/json'")
        try:
            json.loads(curl.data)
        except ValueError as exc:
            problems.append(f"{curl.where}: the -d body is not JSON ({exc}): {curl.data}")
    return problems


@pytest.mark.parametrize("block", CURL_BLOCKS, ids=lambda block: block.where)
def test_curl_commands_are_well_formed(block, docs_api):
    problems = [problem for curl in curls_of(block) for problem in curl_problems(curl, docs_api.client.app)]
    assert not problems, "\n".join(problems)


SENT_BLOCKS = [
    block for block in CURL_BLOCKS if any(isinstance(curl, Curl) and sent_as_request(curl) for curl in curls_of(block))
]


@pytest.mark.parametrize("block", SENT_BLOCKS, ids=lambda block: block.where)
def test_documented_requests_are_accepted(block, docs_api):
    """Sent in the block's order (a destination is registered before a run writes to it)."""
    refused = []
    for curl in curls_of(block):
        if not isinstance(curl, Curl) or not sent_as_request(curl):
            continue
        response = docs_api.send(curl)
        if response.status_code >= 400:
            answer = f"{response.status_code}: {response.text[:600]}"
            refused.append(f"{curl.where}: {curl.method} {curl.api_path} answered {answer}")
    assert not refused, "\n".join(refused)


def renderq_commands() -> list[tuple[str, list[str]]]:
    """(file:line, argv) of every `renderq …` command line in a shell block (a `$ ` prompt and
    leading VAR=value assignments allowed)."""
    found = []
    for block in ALL_BLOCKS:
        if block.lang not in ("bash", "sh", "shell"):
            continue
        for offset, line in enumerate(block.lines, start=1):
            text = line.strip()
            text = text[2:] if text.startswith("$ ") else text
            if not re.match(r"(?:[A-Z_]+=\S*\s+)*renderq\s", text):
                continue
            argv = shlex.split(text, comments=True)
            while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
                argv = argv[1:]
            if argv and argv[0] == "renderq":
                found.append((f"{block.path.relative_to(ROOT)}:{block.line + offset}", argv[1:]))
    return found


def test_renderq_commands_parse():
    """Every documented `renderq` command line is one the command accepts (parsed, not run)."""
    from ops.cli import build_parser

    commands = renderq_commands()
    assert len(commands) >= 10
    refused = []
    for where, argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            refused.append(f"{where}: renderq {' '.join(argv)}")
    assert not refused, "renderq refuses:\n" + "\n".join(refused)


def test_the_docs_send_enough_to_matter():
    """A parser that found nothing would pass every test above: count what it finds."""
    commands = [c for block in CURL_BLOCKS for c in curls_of(block) if isinstance(c, Curl)]
    assert sum(1 for c in commands if c.data is not None) >= 25
    assert sum(1 for c in commands if c.form) >= 8
    assert any(block.where.startswith("README.md") for block in SENT_BLOCKS)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "json"], ids=lambda block: block.where)
def test_json_blocks_parse(block):
    try:
        json.loads(block.text)
    except ValueError as exc:
        pytest.fail(f"{block.where}: not JSON ({exc})")


def test_the_example_catalog_is_a_catalog(tmp_path):
    from core.settings import Settings
    from storage.models_catalog import ModelCatalog

    path = tmp_path / "models.json"
    path.write_text(json.dumps(docs_catalog()))
    catalog = ModelCatalog.from_settings(Settings(models_file=path))
    assert {"controlnet", "ip-adapter", "lora", "upscaler"} <= {entry.kind for entry in catalog.entries.values()}


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "python"], ids=lambda block: block.where)
def test_python_blocks_compile_and_import_what_exists(block):
    try:
        tree = ast.parse(block.text, filename=block.where)
    except SyntaxError as exc:
        pytest.fail(f"{block.path.relative_to(ROOT)}:{block.line + (exc.lineno or 0)}: {exc.msg}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OUR_ROOMS:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block.where}: {node.module} has no {alias.name}"


# --- links ------------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    _, prose = read_doc(path)
    return {slug(line.lstrip("#")) for _, line in prose if re.match(r"#{1,6} ", line)}


def links() -> list[tuple[Path, int, str]]:
    found = []
    for path in DOC_FILES:
        for number, line in read_doc(path)[1]:
            for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
                found.append((path, number, target))
    return found


def test_every_relative_link_points_at_a_file_that_exists():
    checked = 0
    for path, number, target in links():
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}"
        assert linked.exists(), f"{where}: link to {target!r}, but {linked} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{where}: {linked.name} has no heading #{anchor}"
        checked += 1
    assert checked >= 20
