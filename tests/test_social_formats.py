"""Social formats: the platform data file, its endpoints, the crop modes on synthetic images
whose subject is known, max file sizes, the safe-zone overlay, and a run end to end."""

from __future__ import annotations

import io
import json
import re

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pipelines.base import OutputTooLarge
from pipelines.png import read_parameters
from pipelines.social_formats.request import SocialFormat, SocialFormatsRequest
from pipelines.social_formats.pipeline import SAFE_ZONE_LINE, SocialFormatsPipeline, encode_within
from storage.platforms import DEFAULT_PLATFORMS_FILE, PlatformCatalog, _load
from core.settings import Settings
from tests.conftest import wait_for_run
from tests.images import data_url, encode, noise
from tests.inprocess import inprocess_app

BACKGROUND = (190, 196, 204)


def with_subject(size: tuple[int, int], box: tuple[int, int, int, int], seed: int = 0) -> Image.Image:
    """A flat background with a textured, high-contrast square (the subject) at `box`."""
    image = Image.new("RGB", size, BACKGROUND)
    image.paste(noise(box[2] - box[0], box[3] - box[1], seed=seed), box[:2])
    return image


def fmt(width: int, height: int, max_bytes: int = 10**7, **safe_zone) -> SocialFormat:
    return SocialFormat(platform="test", format_id=f"f-{width}x{height}", name=f"{width}×{height}", width=width,
                        height=height, max_bytes=max_bytes, safe_zone=safe_zone)


def render(image: Image.Image, *formats: SocialFormat, **options):
    request = SocialFormatsRequest(image_asset_id="ast_" + "0" * 24, formats=list(formats), **options)
    return SocialFormatsPipeline().render(request, images={"image": image})


def contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --- crop modes ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("size", "subject", "target"),
    [
        ((320, 160), (262, 50, 312, 100), (64, 64)),  # near the right edge, square crop
        ((320, 160), (8, 60, 58, 110), (72, 96)),  # near the left edge, 3:4 crop
        ((160, 320), (50, 8, 100, 58), (96, 54)),  # near the top of a portrait, 16:9 crop
        ((1080, 1080), (60, 820, 240, 1000), (1080, 1920)),  # bottom-left of a square, 9:16 story
    ],
)
def test_smart_crop_keeps_a_subject_near_an_edge_that_the_center_crop_cuts(size, subject, target):
    image = with_subject(size, subject)
    smart, = render(image, fmt(*target), crop_mode="smart")
    center, = render(image, fmt(*target), crop_mode="center")
    assert contains(smart.parameters["crop_box"], subject)
    assert not contains(center.parameters["crop_box"], subject)
    assert smart.image.size == center.image.size == target
    # The pixels say the same: the subject's texture is in the smart output only.
    assert np.asarray(smart.image, dtype=float).std() > 3 * np.asarray(center.image, dtype=float).std() + 1


def test_focal_point_takes_precedence_over_what_smart_crop_sees():
    image = with_subject((320, 160), (262, 50, 312, 100))
    out, = render(image, fmt(64, 64), crop_mode="smart", focal_point={"x": 0.05, "y": 0.5})
    assert tuple(out.parameters["crop_box"]) == (0, 0, 160, 160)  # at the left edge, away from the subject
    moved, = render(image, fmt(64, 64), crop_mode="center", focal_point={"x": 0.75, "y": 0.5})
    assert tuple(moved.parameters["crop_box"]) == (160, 0, 320, 160)  # centred at x=240, clamped to the edge


def test_fit_keeps_the_whole_image_letterboxed():
    image = with_subject((200, 100), (150, 25, 200, 75))
    out, = render(image, fmt(64, 64), crop_mode="fit")
    assert out.image.size == (64, 64) and out.parameters["crop_box"] is None
    inner = np.asarray(out.image.crop((0, 16, 64, 48)), dtype=float)
    expected = np.asarray(image.resize((64, 32), Image.Resampling.LANCZOS), dtype=float)
    assert np.abs(inner - expected).mean() < 2  # the whole image, scaled, between the bars
    assert np.asarray(out.image.crop((0, 0, 64, 14)), dtype=float).std() < np.asarray(image, dtype=float).std()


def test_every_format_of_the_data_file_gets_exactly_its_size():
    catalog = _load(DEFAULT_PLATFORMS_FILE)
    formats = [fmt(f.width, f.height, f.max_bytes) for p in catalog.platforms for f in p.formats]
    outputs = render(noise(96, 64), *formats, crop_mode="smart", output_format="jpg")
    assert [o.image.size for o in outputs] == [(f.width, f.height) for f in formats]
    assert all(Image.open(io.BytesIO(o.encoded)).size == o.image.size for o in outputs)


# --- file size ------------------------------------------------------------------------------

def test_outputs_are_re_encoded_until_they_fit_the_max_file_size():
    image = noise(256, 256, seed=3)  # noise: the worst case for both codecs
    full_png = len(encode(image))
    png, = render(image, fmt(256, 256, max_bytes=full_png // 2), crop_mode="center")
    assert len(png.encoded) <= full_png // 2 and png.parameters["encoding"]["colours"] in (256, 128, 64)
    assert Image.open(io.BytesIO(png.encoded)).format == "PNG"
    jpg, = render(image, fmt(256, 256, max_bytes=40_000), crop_mode="center", output_format="jpeg")
    assert len(jpg.encoded) <= 40_000 and jpg.parameters["encoding"]["quality"] < 92
    assert jpg.content_type == "image/jpeg" and Image.open(io.BytesIO(jpg.encoded)).format == "JPEG"
    assert read_parameters(jpg.encoded)["format_id"] == "f-256x256"  # the JPEG comment carries them
    with pytest.raises(OutputTooLarge, match="at most 500"):
        render(image, fmt(256, 256, max_bytes=500), crop_mode="center")


def test_encode_within_keeps_full_quality_when_it_fits():
    data, encoding = encode_within(Image.new("RGB", (64, 64), BACKGROUND), "jpg", 10**6, {})
    assert encoding == {"quality": 92} and Image.open(io.BytesIO(data)).format == "JPEG"


# --- safe zones -----------------------------------------------------------------------------

def test_safe_zone_overlay_tints_the_margins_and_outlines_the_safe_area():
    image = Image.new("RGB", (100, 200), BACKGROUND)
    plain, = render(image, fmt(100, 200, top=0.25, bottom=0.1, left=0.2), crop_mode="center")
    out, = render(image, fmt(100, 200, top=0.25, bottom=0.1, left=0.2), crop_mode="center", show_safe_zones=True)
    pixels = np.asarray(out.image).astype(int)
    assert (np.asarray(plain.image) == BACKGROUND).all()
    for y, x in ((10, 60), (190, 60), (100, 5)):  # top, bottom and left margins: tinted towards red
        assert pixels[y, x, 0] > BACKGROUND[0] and pixels[y, x, 1] < BACKGROUND[1], (y, x)
    assert tuple(pixels[100, 60]) == BACKGROUND  # inside the safe area: untouched
    assert tuple(pixels[50, 60]) == SAFE_ZONE_LINE and tuple(pixels[48, 60]) != SAFE_ZONE_LINE  # outline at y=50
    assert tuple(pixels[100, 20]) == SAFE_ZONE_LINE  # and at x=20; no right margin: nothing at the right edge
    assert tuple(pixels[100, 99]) == BACKGROUND


# --- the platform data file -------------------------------------------------------------------

def _ratio(text: str) -> float:
    a, b = (float(v) for v in re.fullmatch(r"([\d.]+):([\d.]+)", text).groups())
    return a / b


def test_the_data_file_has_the_seven_platforms_and_consistent_formats():
    catalog = PlatformCatalog.from_settings(Settings())
    assert {p.id for p in catalog.platforms} == {"instagram", "facebook", "x", "linkedin", "youtube", "pinterest", "tiktok"}
    assert catalog.get("Twitter") is catalog.get("x")
    for platform in catalog.platforms:
        assert sum(f.default for f in platform.formats) == 1, platform.id
        for f in platform.formats:
            assert abs(_ratio(f.ratio) - f.width / f.height) / (f.width / f.height) < 0.03, (platform.id, f.id)
            assert f.takes("png") and f.takes("jpg") and f.max_bytes >= 10**6
    assert (catalog.get("youtube").format("Thumbnail").max_bytes, catalog.get("instagram").format("story").height) == (2 * 10**6, 1920)


@pytest.fixture
def client(tmp_path):
    app, _, key = inprocess_app(str(tmp_path / "images"))
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_platforms_endpoints_list_the_formats_and_404_an_unknown_platform(client):
    platforms = client.get("/v1/platforms").json()["platforms"]
    assert len(platforms) == 7
    x = next(p for p in platforms if p["id"] == "x")
    assert x["aliases"] == ["twitter"] and x["default_format"] == "post-landscape"
    formats = client.get("/v1/platforms/twitter/formats").json()
    assert formats["platform"] == "x" and formats["formats"] == x["formats"]
    square = next(f for f in client.get("/v1/platforms/instagram/formats").json()["formats"] if f["id"] == "feed-square")
    assert square | {"safe_zone": None} == {
        "id": "feed-square", "name": "Feed Post (Square)", "width": 1080, "height": 1080, "ratio": "1:1", "safe_zone": None,
        "file_types": ["JPG", "PNG"], "max_size_mb": 8.0, "max_bytes": 8_000_000, "default": True,
    }
    missing = client.get("/v1/platforms/myspace/formats")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/unknown-platform")
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_a_platforms_file_of_its_own_replaces_the_shipped_one(tmp_path):
    data = json.loads(DEFAULT_PLATFORMS_FILE.read_text())
    data["platforms"] = [{"id": "tiny", "name": "Tiny", "formats": [
        {"id": "thumb", "name": "Thumb", "width": 32, "height": 16, "ratio": "2:1", "file_types": ["PNG"], "max_size_mb": 0.002},
    ]}]
    (tmp_path / "platforms.json").write_text(json.dumps(data))
    app, services, key = inprocess_app(str(tmp_path / "images"), platforms_file=tmp_path / "platforms.json")
    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        assert [p["id"] for p in client.get("/v1/platforms").json()["platforms"]] == ["tiny"]
        run = client.post("/v1/social-formats", json={"image": data_url(noise(64, 64)), "platforms": ["tiny"]})
        assert run.status_code == 202, run.text
        assert run.json()["request"]["formats"] == [{
            "platform": "tiny", "format_id": "thumb", "name": "Thumb", "width": 32, "height": 16, "max_bytes": 2000,
            "safe_zone": {"top": 0.0, "bottom": 0.0, "left": 0.0, "right": 0.0},
        }]
        refused = client.post("/v1/social-formats", json={"image": data_url(noise(64, 64)), "platforms": ["tiny"], "output_format": "jpg"})
        assert refused.status_code == 422 and "takes PNG" in refused.json()["detail"]


PNG64 = data_url(noise(64, 64))


@pytest.mark.parametrize(
    ("fields", "status", "slug"),
    [
        ({"image": PNG64, "platforms": ["myspace"]}, 422, "unknown-platform"),
        ({"image": PNG64, "platforms": ["instagram"], "format_names": {"instagram": "Billboard"}}, 422, "unknown-format"),
        ({"image": PNG64, "platforms": ["instagram"], "format_names": {"x": "header"}}, 422, "validation-error"),
        ({"image": PNG64, "platforms": ["x"], "focal_point": {"x": 1.2, "y": 0.5}}, 422, "validation-error"),
        ({"image": PNG64, "platforms": ["x"], "focal_point": {"x": 0.5}}, 422, "validation-error"),
        ({"image": PNG64, "platforms": ["x"], "crop_mode": "fit", "focal_point": {"x": 0.5, "y": 0.5}}, 422, "validation-error"),
        ({"image": PNG64, "platforms": ["x"], "crop_mode": "zoom"}, 422, "validation-error"),
        ({"image": PNG64, "platforms": []}, 422, "validation-error"),
        ({"image": PNG64}, 422, "validation-error"),
        ({"platforms": ["x"]}, 422, "validation-error"),  # no image
        ({"image_asset_id": "ast_" + "0" * 24, "platforms": ["x"]}, 422, "unknown-asset"),
    ],
)
def test_bad_social_formats_requests_are_4xx_problems(client, fields, status, slug):
    response = client.post("/v1/social-formats", json=fields)
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith("/" + slug)


def test_format_names_by_id_or_name_and_defaults_per_platform(client):
    run = client.post("/v1/social-formats", json={
        "image": PNG64, "platforms": ["instagram", "twitter", "youtube"],
        "format_names": {"instagram": ["Story", "feed-square", "story"], "twitter": "HEADER"},
    })
    assert run.status_code == 202, run.text
    formats = [(f["platform"], f["format_id"]) for f in run.json()["request"]["formats"]]
    assert formats == [("instagram", "story"), ("instagram", "feed-square"), ("x", "header"), ("youtube", "thumbnail")]


# --- end to end ---------------------------------------------------------------------------------

@pytest.mark.integration
def test_social_formats_end_to_end_jpeg_outputs_labelled_per_format(api):
    subject = (300, 380, 380, 460)  # bottom right of a 400×480 image
    image = with_subject((400, 480), subject, seed=5)
    upload = api.post("/v1/assets", content=encode(image), headers={"content-type": "image/png"}).json()
    response = api.post("/v1/social-formats", json={
        "image_asset_id": upload["asset_id"], "platforms": ["instagram", "twitter"],
        "format_names": {"instagram": ["feed-landscape", "story"]}, "output_format": "jpg",
    })
    assert response.status_code == 202, response.text
    run = wait_for_run(api, response.json()["run_id"])
    assert run["status"] == "completed" and run["operation"] == "social-formats" and run["model_id"] == ""
    labels = [(i["platform"], i["format_id"], i["format_name"], i["width"], i["height"]) for i in run["images"]]
    assert labels == [
        ("instagram", "feed-landscape", "Feed Post (Landscape)", 1080, 566),
        ("instagram", "story", "Story", 1080, 1920),
        ("x", "post-landscape", "Post (Landscape)", 1600, 900),
    ]
    for view in run["images"]:
        fetched = httpx.get(view["url"])
        assert fetched.headers["content-type"] == view["content_type"] == "image/jpeg"
        assert ".jpg" in fetched.url.path and len(fetched.content) == view["bytes"]
        parameters = read_parameters(fetched.content)
        assert Image.open(io.BytesIO(fetched.content)).size == (view["width"], view["height"])
        assert parameters["crop_mode"] == "smart" and overlaps(parameters["crop_box"], subject)
    # The wide crops hold the whole subject (a centred crop of the 400×480 image would not).
    assert contains(read_parameters(httpx.get(run["images"][0]["url"]).content)["crop_box"], subject)


@pytest.mark.integration
def test_social_formats_end_to_end_png_fits_the_platform_max_size(api):
    image = noise(1280, 720, seed=7)  # a lossless PNG of noise is ~2.7 MB; YouTube takes 2 MB
    assert len(encode(image)) > 2_000_000
    response = api.post("/v1/social-formats", files={"image": ("n.png", encode(image), "image/png")},
                        data={"platforms": "youtube", "crop_mode": "center", "show_safe_zones": "true"})
    assert response.status_code == 202, response.text
    run = wait_for_run(api, response.json()["run_id"])
    assert run["status"] == "completed", run
    view, = run["images"]
    assert (view["platform"], view["format_id"], view["content_type"]) == ("youtube", "thumbnail", "image/png")
    assert 0 < view["bytes"] <= 2_000_000
    fetched = Image.open(io.BytesIO(httpx.get(view["url"]).content))
    assert fetched.format == "PNG" and fetched.size == (1280, 720)
