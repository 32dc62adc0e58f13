"""Decoding and validating input images: the one place that turns caller bytes into pixels.

The API runs these checks before anything is stored or enqueued (so a bad image is a 4xx at
submit, never a failed job); the worker decodes the stored bytes with the same function.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Formats accepted as input, by Pillow's format name.
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}

_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*;base64,", re.IGNORECASE)


class ImageRejected(ValueError):
    """An input image the service will not take; `status` is the HTTP status to answer."""

    def __init__(self, detail: str, status: int = 422, slug: str = "invalid-image") -> None:
        super().__init__(detail)
        self.detail, self.status, self.slug = detail, status, slug


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


def too_large(size: int, max_bytes: int) -> ImageRejected:
    return ImageRejected(
        f"the image is {size} bytes; the limit is {max_bytes} bytes", status=413, slug="payload-too-large"
    )


def decode_base64(text: str, max_bytes: int) -> bytes:
    """Bytes of a base64 string or a `data:image/...;base64,` URL (ALwrity's inputs)."""
    text = text.strip()
    match = _DATA_URL.match(text)
    if match:
        text = text[match.end():]
    elif text.startswith("data:"):
        raise ImageRejected("a data URL must be base64 encoded (data:image/png;base64,...)")
    # Refuse by the encoded length first: decoding a huge string costs memory before any check.
    if len(text) * 3 // 4 > max_bytes + 3:
        raise too_large(len(text) * 3 // 4, max_bytes)
    try:
        data = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("the image is not valid base64 (nor a base64 data URL)") from None
    if len(data) > max_bytes:
        raise too_large(len(data), max_bytes)
    return data


def open_image(data: bytes, max_bytes: int, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    """Decode PNG/JPEG/WebP bytes fully, refusing anything else, anything over `max_bytes`, and
    anything over `max_pixels` before its pixels are decoded (a decompression bomb stops at
    the header)."""
    if len(data) > max_bytes:
        raise too_large(len(data), max_bytes)
    if not data:
        raise ImageRejected("the image is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageRejected("the image could not be decoded; send a PNG, JPEG or WebP file") from None
    except Image.DecompressionBombError:
        raise ImageRejected(f"the image has more than {max_pixels} pixels", status=413, slug="payload-too-large") from None
    if image.format not in CONTENT_TYPES:
        raise ImageRejected(f"images must be PNG, JPEG or WebP, not {image.format}", status=415, slug="unsupported-media-type")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(
            f"the image is {width}×{height} = {width * height} pixels; the limit is {max_pixels}",
            status=413,
            slug="payload-too-large",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except Exception:  # truncated or corrupt pixel data, whatever the codec raises
        raise ImageRejected("the image data is truncated or corrupt") from None
    return image, ImageInfo(CONTENT_TYPES[image.format], width, height)


def load_image(data: bytes) -> Image.Image:
    """Decode bytes the API already validated (worker side)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def converted(data: bytes, output_format: str, compression: int | None = None) -> bytes:
    """A stored image re-encoded as `output_format` (png, jpeg, webp; MEDIA_TYPES), at Pillow's
    quality `compression` (100 when None)."""
    image = Image.open(io.BytesIO(data))
    if output_format == "jpeg" and image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format=output_format.upper(), quality=100 if compression is None else compression)
    return out.getvalue()


THUMBNAIL_SIDE = 256  # long side of a gallery thumbnail, at most


def thumbnail(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small WebP of `image` for galleries (`images[].thumbnail_url`): at most `side` px on its
    long side, never enlarged, transparency kept."""
    small = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    small.thumbnail((side, side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=80, method=2)
    return out.getvalue()
