"""Multipart form values are text: an int Literal field (upscale's upscale_factor) takes "2" in a
form as it takes 2 in JSON; and the inpaint whose mask selects nothing is refused at submit."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.bodies import BODIES
from api.inputs import validate_body
from tests.images import encode, noise
from tests.inprocess import inprocess_app


def test_int_literal_fields_take_their_form_text():
    body = validate_body(BODIES["upscale"], {"image_asset_id": "ast_" + "0" * 24, "upscale_factor": "2"})
    assert body.upscale_factor == 2


@pytest.fixture
def client(tmp_path):
    app, _, key = inprocess_app(str(tmp_path), default_model="tiny/model")
    with TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_multipart_upscale_factor_2_is_taken(client):
    response = client.post("/v1/upscale", data={"upscale_factor": "2", "mode": "fast"},
                           files={"image": ("a.png", encode(noise(64, 64)), "image/png")})
    assert response.status_code == 202, response.text
    assert response.json()["request"]["upscale_factor"] == 2
    refused = client.post("/v1/upscale", data={"upscale_factor": "5", "mode": "fast"}, files={"image": ("a.png", encode(noise(64, 64)), "image/png")})
    assert refused.status_code == 422


@pytest.mark.parametrize("fields, mask, looked_for", [
    ({}, None, "[0, 0, 0, 0]"),  # an opaque image, the default colour (transparent pixels)
    ({"mask_color_rgba": "[255,255,255,255]"}, Image.new("RGBA", (64, 64), (0, 0, 0, 255)), "[255, 255, 255, 255]"),
    ({}, Image.new("L", (64, 64), 0), "white"),  # a mask image with no white
])
def test_an_inpaint_whose_mask_selects_nothing_is_refused_at_submit(client, fields, mask, looked_for):
    files = {"image": ("a.png", _png(Image.new("RGBA", (64, 64), (9, 9, 9, 255))), "image/png")}
    if mask is not None:
        files["mask"] = ("m.png", _png(mask), "image/png")
    response = client.post("/v1/inpaint", data={"prompt": "a cat", **fields}, files=files)
    assert response.status_code == 422 and response.json()["type"] == "/problems/empty-mask", response.text
    assert looked_for in response.json()["detail"]


@pytest.mark.parametrize("fields, mask", [
    ({}, None),
    ({"mask_color_rgba": "[255,255,255,255]", "mask_color_threshold": "10"}, Image.new("RGBA", (64, 64), (240, 250, 235, 255))),
    ({}, Image.new("L", (64, 64), 200)),
])
def test_an_inpaint_whose_mask_selects_pixels_is_taken(client, fields, mask):
    image = Image.new("RGBA", (64, 64), (9, 9, 9, 255))
    image.putpixel((3, 3), (200, 10, 10, 0))  # transparent, whatever its colour? The default is exactly [0,0,0,0]:
    image.putpixel((4, 4), (0, 0, 0, 0))
    files = {"image": ("a.png", _png(image), "image/png")}
    if mask is not None:
        files["mask"] = ("m.png", _png(mask), "image/png")
    response = client.post("/v1/inpaint", data={"prompt": "a cat", **fields}, files=files)
    assert response.status_code == 202, response.text
