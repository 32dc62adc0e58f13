"""`renderq dev`: the embedded all-in-one service, end to end over HTTP."""

from __future__ import annotations

import io
import os

import httpx
import pytest
from PIL import Image

from tests.conftest import wait_for_run
from devkit.procs import Proc, free_port, renderq_command, wait_until

# Starts `renderq dev` itself (no stack fixture).
pytestmark = pytest.mark.integration


def test_dev_mode_renders_and_serves_a_png_with_nothing_installed(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENDERQ_")} | {"HF_HUB_OFFLINE": "1"}
    proc = Proc(renderq_command("dev", "--port", str(port)), tmp_path / "dev.log", env=env, cwd=str(tmp_path))
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert proc.alive(), proc.log()[-3000:]
            try:
                return httpx.get(base + "/readyz", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 120, interval=0.2, what="renderq dev")
        assert "RANDOM-WEIGHT" in proc.log()  # says loudly that images are noise, and how to fix it
        assert "WITHOUT API KEYS" in proc.log()  # and that it takes no keys
        wait_until(lambda: "renderq dev is ready" in proc.log(), 30, interval=0.1, what="the banner")
        assert f"{base}/ " in proc.log() and "playground" in proc.log()  # the banner points to the page
        with httpx.Client(base_url=base, timeout=10) as api:
            page = api.get("/")
            assert page.status_code == 200 and "renderq playground" in page.text
            submitted = api.post(
                "/v1/generations", json={"prompt": "a mug", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 7}
            )
            assert submitted.status_code == 202
            run = wait_for_run(api, submitted.json()["run_id"])
        assert run["status"] == "completed", run
        image = httpx.get(run["image_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(image.content)) as png:
            assert png.size == (64, 64)
        # A tampered signature is refused.
        assert httpx.get(run["image_url"].replace("signature=", "signature=0")).status_code == 404
        assert (tmp_path / ".renderq" / "tiny-model").is_dir()
    finally:
        proc.stop()
