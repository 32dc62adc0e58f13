"""The dialects on the real stack (API + worker + Redis + S3, the tiny model): one request each of
ImagineoAI (async: generate, then poll its status route), LimeWire (synchronous, the PNG itself
with `Accept: image/png`) and Livepeer (synchronous multipart image-to-image), each rendered by a
real worker and its image fetched from its URL; and Livepeer's image_guidance_scale rendered by
the instruct model. Everything else about the dialects is in the
fast tier (tests/test_compat_dialects.py, tests/test_compat_units.py)."""

from __future__ import annotations

import time

import httpx

from tests.images import decode, encode, noise


def _image_at(url: str):
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, url
    return decode(response.content)


def test_each_dialect_renders_on_the_real_stack(api):
    run_id = api.post("/compat/imagineo/generate", json={"positive_prompt": "a red mug", "width": 64, "height": 64,
                                                          "num_inference_steps": 2}).json()["run_id"]
    deadline = time.monotonic() + 60
    while (status := api.get(f"/compat/imagineo/generations/{run_id}").json())["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["status"] == "completed" and status["progress"] == 100
    assert _image_at(status["image_url"]).size == (64, 64)

    png = api.post("/compat/limewire/image/generation", headers={"Accept": "image/png"}, timeout=60,
                   json={"prompt": "a sea otter", "width": 64, "height": 96, "num_inference_steps": 2})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png", png.text[:300]
    assert decode(png.content).size == (64, 96)
    assert api.get(f"/v1/generations/{png.headers['x-run-id']}").json()["status"] == "completed"

    answer = api.post("/compat/livepeer/image-to-image", timeout=60, files={"image": ("a.png", encode(noise(64, 64)), "image/png")},
                      data={"prompt": "a watercolour cat", "model_id": "", "num_inference_steps": "2", "seed": "5"})
    assert answer.status_code == 200, answer.text[:300]
    [image] = answer.json()["images"]
    assert image["seed"] == 5 and image["nsfw"] is False and _image_at(image["url"]).size == (64, 64)

    edit = api.post("/compat/livepeer/image-to-image", timeout=60, files={"image": ("a.png", encode(noise(64, 64)), "image/png")},
                    data={"prompt": "make it winter", "image_guidance_scale": "1.5", "num_inference_steps": "2"})
    assert edit.status_code == 200, edit.text[:300]
    assert api.get(f"/v1/generations/{edit.json()['run_id']}").json()["operation"] == "general-edit"
    [image] = edit.json()["images"]
    assert _image_at(image["url"]).size == (64, 64)
