"""PNG encoding that records how an image was made."""

from __future__ import annotations

import io
import json

from PIL import Image, PngImagePlugin

PARAMETERS_KEY = "parameters"


def encode_png(image: Image.Image, parameters: dict) -> bytes:
    """PNG bytes with the generation parameters as JSON in a `parameters` text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, json.dumps(parameters, sort_keys=True, default=str))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_parameters(data: bytes) -> dict:
    """The parameters a renderq PNG (text chunk) or JPEG (comment) carries ({} when none)."""
    with Image.open(io.BytesIO(data)) as image:
        text = image.info.get(PARAMETERS_KEY) or image.info.get("comment")
    return json.loads(text) if text else {}
