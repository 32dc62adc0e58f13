"""Templates and style presets: listing, search, recommendation, and template_id / style_preset
applied to create requests (explicit fields win), in process; then end to end on a stack whose
templates file holds small templates, so the exact output size and the styled prompt are
checked on real PNGs."""

from __future__ import annotations

import json
import tempfile

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.bodies import BODIES
from api.templates import apply_template
from pipelines.png import read_parameters
from pipelines.text_to_image.request import TextToImageRequest
from core.settings import DATA_DIR, Settings
from storage.templates import TemplateCatalog, _load
from tests.conftest import wait_for_run
from tests.images import data_url, decode, noise
from tests.inprocess import inprocess_app
from devkit.procs import start_api

PHOTO = json.loads((DATA_DIR / "style_presets.json").read_text())["style_presets"][0]
assert PHOTO["id"] == "photographic"
PHOTO_PROMPT = PHOTO["prompt"].replace("{prompt}", "a desk")


@pytest.fixture(scope="module")
def client():
    app, _, key = inprocess_app(tempfile.mkdtemp(prefix="renderq-templates-"))
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def ids(answer: dict) -> list[str]:
    assert answer["total"] == len(answer["templates"])
    return [template["id"] for template in answer["templates"]]


def submit(client, path: str = "/v1/generations", expect: int = 202, **fields) -> dict:
    response = client.post(path, json=fields)
    assert response.status_code == expect, response.text
    return response.json()


# --- listing, search, recommend ---------------------------------------------------------------

def test_templates_filter_by_platform_and_category(client):
    everything = client.get("/v1/templates").json()
    assert everything["total"] >= 24
    platforms = {t["platform"] for t in everything["templates"]}
    assert {"instagram", "facebook", "twitter", "linkedin", "youtube", "pinterest", "tiktok", "blog", "email"} <= platforms
    linkedin = client.get("/v1/templates", params={"platform": "linkedin"}).json()
    assert set(ids(linkedin)) == {"linkedin_post", "linkedin_post_square", "linkedin_article", "linkedin_cover"}
    post = next(t for t in linkedin["templates"] if t["id"] == "linkedin_post")
    assert post["aspect_ratio"] == {"ratio": "1.91:1", "width": 1200, "height": 628, "label": "Landscape"}
    assert (post["quality"], post["style_preset"]) == ("HIGH", "photographic") and post["use_cases"] and post["tags"]
    blog = client.get("/v1/templates", params={"category": "blog_content"}).json()
    assert ids(blog) and {t["category"] for t in blog["templates"]} == {"blog_content"}
    both = client.get("/v1/templates", params={"platform": "instagram", "category": "blog_content"}).json()
    assert both == {"templates": [], "total": 0}


def test_search_ranks_the_template_matching_every_word_first(client):
    found = client.get("/v1/templates/search", params={"query": "YouTube thumbnails"}).json()
    assert ids(found)[0] == "youtube_thumbnail"
    scores = [t["score"] for t in found["templates"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    # A word of the query found in a template's tags or use cases only still finds it.
    assert ids(client.get("/v1/templates/search", params={"query": "recipes"}).json()) == ["pinterest_pin"]
    assert set(ids(client.get("/v1/templates/search", params={"query": "iab"}).json())) == {
        "display_ad_rectangle", "display_ad_leaderboard",
    }
    # A word's beginning matches at half weight; no match at all is an empty list.
    assert "youtube_thumbnail" in ids(client.get("/v1/templates/search", params={"query": "thumb"}).json())
    assert client.get("/v1/templates/search", params={"query": "zzzz"}).json()["total"] == 0
    on_platform = client.get("/v1/templates/search", params={"query": "cover", "platform": "facebook"}).json()
    assert ids(on_platform)[:2] == ["facebook_cover", "facebook_event_cover"]
    assert {t["platform"] for t in on_platform["templates"]} == {"facebook"}


def test_recommend_ranks_by_how_well_the_use_case_matches(client):
    found = client.get("/v1/templates/recommend", params={"use_case": "product showcase"}).json()
    assert ids(found)[:2] == ["product_photo", "instagram_feed_square"]  # same words as a use case (+ a tag)
    assert found["templates"][1]["score"] == 1.0
    assert all(t["score"] < 1 for t in found["templates"][2:])  # one word in common only
    on_instagram = client.get("/v1/templates/recommend", params={"use_case": "Product showcase", "platform": "instagram"}).json()
    assert ids(on_instagram)[0] == "instagram_feed_square"
    assert {t["platform"] for t in on_instagram["templates"]} == {"instagram"}
    assert ids(client.get("/v1/templates/recommend", params={"use_case": "thought leadership"}).json()) == ["linkedin_post"]


def test_a_template_by_id_and_an_unknown_one_is_a_404_problem(client):
    assert client.get("/v1/templates/youtube_thumbnail").json()["aspect_ratio"]["width"] == 1280
    response = client.get("/v1/templates/no_such_template")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/not-found"
    assert client.get("/v1/templates/search").status_code == 422  # query is required


def test_style_presets_are_listed_with_their_prompts(client):
    presets = {p["id"]: p for p in client.get("/v1/style-presets").json()["style_presets"]}
    assert {"photographic", "digital-art", "anime", "cinematic", "line-art", "pixel-art"} <= set(presets)
    assert all("{prompt}" in p["prompt"] and p["negative_prompt"] for p in presets.values())


# --- template_id and style_preset on create requests ------------------------------------------

def test_template_applies_its_size_quality_tier_and_style_preset(client):
    run = submit(client, prompt="a desk", template_id="linkedin_post", negative_prompt="text")
    request = run["request"]
    # 1200×628: rendered at 1200×632 (628 is no multiple of 8), cropped to the exact 628.
    assert (request["width"], request["height"], request["output_width"], request["output_height"]) == (1200, 632, None, 628)
    assert request["num_inference_steps"] == 40  # HIGH
    assert request["prompt"] == PHOTO_PROMPT
    assert request["negative_prompt"] == "text, " + PHOTO["negative_prompt"]
    assert (run["template_id"], run["style_preset"], run["input_prompt"]) == ("linkedin_post", "photographic", "a desk")
    again = client.get(f"/v1/generations/{run['run_id']}").json()
    assert (again["template_id"], again["style_preset"], again["request"]["prompt"]) == ("linkedin_post", "photographic", PHOTO_PROMPT)


def test_explicit_fields_override_the_template(client):
    given = submit(
        client, prompt="a desk", template_id="linkedin_post", width=64, height=128, num_inference_steps=3, style_preset="anime",
    )["request"]
    assert (given["width"], given["height"], given["output_height"], given["num_inference_steps"]) == (64, 128, None, 3)
    assert given["prompt"].startswith("anime artwork of a desk")
    # The caller's quality replaces the template's tier, the template's size stays.
    low = submit(client, prompt="a desk", template_id="linkedin_post", quality="LOW")["request"]
    assert (low["width"], low["height"], low["output_height"], low["num_inference_steps"]) == (1200, 632, 628, 15)
    # aspect_ratio replaces the template's size (at the template's HIGH area); "none" drops its preset.
    plain = submit(client, prompt="a desk", template_id="linkedin_post", aspect_ratio="16:9", style_preset="none")
    assert (plain["request"]["width"], plain["request"]["height"]) == (1024, 576)
    assert plain["request"]["prompt"] == "a desk" and plain["style_preset"] is None
    # A style preset alone, no template.
    styled = submit(client, prompt="a desk", style_preset="photographic", width=64, height=64)
    assert styled["request"]["prompt"] == PHOTO_PROMPT and styled["template_id"] is None


def test_unknown_template_or_style_preset_is_a_422_problem(client):
    for fields, slug in (({"template_id": "no_such_template"}, "unknown-template"), ({"style_preset": "no-such-style"}, "unknown-style-preset")):
        problem = submit(client, expect=422, prompt="a desk", **fields)
        assert problem["type"] == f"/problems/{slug}" and repr(next(iter(fields.values()))) in problem["detail"]
    problem = submit(client, expect=422, prompt="a desk", template_id="Bad Id!")
    assert problem["type"] == "/problems/validation-error"
    batch = client.post("/v1/batches", json=[{"prompt": "a"}, {"prompt": "b", "template_id": "no_such_template"}])
    assert batch.status_code == 422 and batch.json()["type"] == "/problems/unknown-template" and batch.json()["index"] == 1
    too_long = submit(client, expect=422, prompt="x" * 1990, style_preset="photographic")
    assert too_long["type"] == "/problems/validation-error" and "at most 2000" in too_long["detail"]


def test_batch_items_and_image_operations_take_templates(client):
    batch = client.post("/v1/batches", json=[{"prompt": "a desk", "template_id": "youtube_thumbnail"}]).json()
    run = client.get(f"/v1/generations/{batch['run_ids'][0]}").json()
    assert (run["request"]["width"], run["request"]["height"], run["template_id"]) == (1280, 720, "youtube_thumbnail")
    image = data_url(noise(64, 64))
    # image-to-image: the template's size becomes the output size, exact size included.
    i2i = submit(client, "/v1/image-to-image", image=image, prompt="a desk", template_id="display_ad_rectangle")["request"]
    assert (i2i["width"], i2i["height"], i2i["output_width"], i2i["output_height"]) == (304, 256, 300, 250)
    assert i2i["num_inference_steps"] == 25 and i2i["prompt"].startswith("digital art of a desk")
    # inpaint keeps the input's size: only the quality tier and the style preset apply.
    # (The dark half of the noise is the mask: an inpaint that repaints nothing is refused.)
    inpaint = submit(client, "/v1/inpaint", image=image, prompt="a desk", template_id="linkedin_post",
                     mask_color_rgba=[0, 0, 0, 255], mask_color_threshold=50)
    assert inpaint["request"]["prompt"] == PHOTO_PROMPT and inpaint["request"]["num_inference_steps"] == 40
    assert "width" not in inpaint["request"] and inpaint["template_id"] == "linkedin_post"
    # variations without a prompt: the preset's words alone.
    variations = submit(client, "/v1/variations", image=image, style_preset="pixel-art")["request"]
    assert variations["prompt"].startswith("pixel art, 16-bit")
    # search-replace: what is painted in gets the preset, the input keeps its size.
    body = BODIES["search-replace"].model_validate(
        {"image_asset_id": "ast_" + "0" * 24, "search_prompt": "the cat", "prompt": "a dog", "template_id": "youtube_thumbnail"}
    )
    replaced, applied = apply_template(body, TemplateCatalog.from_settings(Settings()))
    assert replaced.prompt.startswith("cinematic film still of a dog") and replaced.num_inference_steps == 40
    assert (applied.template_id, applied.style_preset, applied.input_prompt) == ("youtube_thumbnail", "cinematic", "a dog")


# --- the data files and the exact size ----------------------------------------------------------

def test_catalog_files_are_checked_when_loaded(tmp_path):
    presets = tmp_path / "presets.json"
    presets.write_text(json.dumps({"style_presets": [{"id": "flat", "name": "Flat", "prompt": "{prompt}, flat"}]}))
    templates = tmp_path / "templates.json"
    template = {"id": "t", "name": "T", "platform": "web", "category": "misc", "quality": "LOW", "style_preset": "glossy",
                "aspect_ratio": {"ratio": "1:1", "width": 64, "height": 64}}
    templates.write_text(json.dumps({"templates": [template]}))
    with pytest.raises(ValueError, match="no style preset 'glossy'"):
        _load(templates, presets)
    presets.write_text(json.dumps({"style_presets": [{"id": "glossy", "name": "G", "prompt": "glossy"}]}))
    with pytest.raises(ValueError, match="exactly once"):
        _load(templates, presets)
    presets.write_text(json.dumps({"style_presets": [{"id": "glossy", "name": "G", "prompt": "{prompt}, glossy"}]}))
    catalog = TemplateCatalog.from_settings(Settings(templates_file=templates, style_presets_file=presets))
    assert catalog.template("t").style_preset == "glossy"


def test_exact_size_needs_the_next_multiple_of_8_and_crops_the_centre():
    with pytest.raises(ValueError, match="height 632"):
        TextToImageRequest(prompt="p", width=1200, height=640, output_height=628)
    request = TextToImageRequest(prompt="p", width=104, height=72, output_width=100, output_height=67)
    image = Image.new("RGB", (104, 72))
    image.putpixel((2, 2), (255, 0, 0))  # the crop's top-left pixel: 2 px off each side
    cropped = request.exact_crop(image)
    assert cropped.size == (100, 67) and cropped.getpixel((0, 0)) == (255, 0, 0)


# --- end to end --------------------------------------------------------------------------------

SMALL_TEMPLATES = {"templates": [
    {"id": "tiny_card", "name": "Tiny Card", "platform": "test", "category": "social_media", "quality": "LOW",
     "style_preset": "photographic", "aspect_ratio": {"ratio": "1.49:1", "width": 100, "height": 67, "label": "Card"},
     "use_cases": ["Link sharing"], "tags": ["card"]},
]}


@pytest.fixture(scope="module")
def small_stack(stack, tmp_path_factory):
    """A second API on the shared stack, reading a templates file of small templates. Templates
    are applied at submit, so the stack's warm worker renders for it unchanged."""
    workdir = tmp_path_factory.mktemp("templates")
    (workdir / "templates.json").write_text(json.dumps(SMALL_TEMPLATES))
    proc, url = start_api(stack.env | {"RENDERQ_TEMPLATES_FILE": str(workdir / "templates.json")}, workdir)
    try:
        with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {stack.key}"}) as client:
            yield client
    finally:
        proc.stop()


def fetch_png(image: dict) -> bytes:
    response = httpx.get(image["url"])
    assert response.status_code == 200
    return response.content


@pytest.mark.integration
def test_a_template_renders_at_its_exact_size_with_the_styled_prompt(small_stack):
    assert ids(small_stack.get("/v1/templates").json()) == ["tiny_card"]
    run = submit(small_stack, prompt="a desk", template_id="tiny_card", num_inference_steps=3, seed=5)
    done = wait_for_run(small_stack, run["run_id"])
    assert done["status"] == "completed", done
    image = done["images"][0]
    assert (image["width"], image["height"]) == (100, 67)
    png = fetch_png(image)
    assert decode(png).size == (100, 67)  # rendered at 104×72, center-cropped
    parameters = read_parameters(png)
    assert parameters["prompt"] == PHOTO_PROMPT and parameters["num_inference_steps"] == 3
    assert (done["template_id"], done["style_preset"], done["input_prompt"]) == ("tiny_card", "photographic", "a desk")
    # image-to-image with the template: its output has the template's exact size too.
    i2i = submit(small_stack, "/v1/image-to-image", image=data_url(noise(64, 64)), template_id="tiny_card",
                 prompt="a desk", num_inference_steps=4, strength=0.5)
    done = wait_for_run(small_stack, i2i["run_id"])
    assert done["status"] == "completed", done
    assert decode(fetch_png(done["images"][0])).size == (100, 67)
