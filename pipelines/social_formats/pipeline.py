"""Social formats: one input image cut to each platform format asked for (model-free).

Where the crop goes:
- `focal_point` given (smart or center): the largest crop of the format's ratio centred on it
  (clamped to the image). It takes precedence over what the image shows: the caller knows
  the subject.
- `smart`: smartcrop (the Python port of smartcrop.js) slides the largest window of the
  format's ratio across the image and scores each position by the detail (Laplacian edges),
  skin tones and saturated colour it holds, weighted towards the window's centre and thirds,
  with detail cut by the window's border penalised.
  Chosen over OpenCV's saliency module because its score is the question asked ("which
  window of this ratio keeps the most"), where a saliency map still needs a window search;
  over a face detector because OpenCV 5 wheels ship no Haar cascades and YuNet needs a model
  file (skin tones stand in for faces). The analysis runs on a copy at most ANALYSIS_SIDE
  pixels a side, so its cost does not grow with the input.
- `center`: the middle. `fit`: the whole image, scaled to fit and letterboxed on a blurred,
  enlarged copy of itself (the bars continue the picture's colours instead of black).

Every output is encoded to fit its format's `max_bytes` (see encode_within).
"""

from __future__ import annotations

import io
import json

from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin
from smartcrop import SmartCrop

from ..base import GeneratedImage, OutputTooLarge, Pipeline, ProgressCallback, RenderInterrupted
from ..png import PARAMETERS_KEY
from .request import FocalPoint, SafeZone, SocialFormat, SocialFormatsRequest

ANALYSIS_SIDE = 384  # pixels: smartcrop's cost grows with the area it scores
MIN_ANALYSIS_SIDE = 16  # a thinner window is centred: smartcrop scores on an 8× downsampled grid
JPEG_QUALITIES = (92, 85, 75, 65, 55, 45, 35)  # tried in turn until the file fits
PNG_COLOURS = (256, 128, 64)  # palette sizes tried once a full-colour PNG is too large
SAFE_ZONE_TINT = (255, 0, 80, 90)  # RGBA laid over the margins the platform may cover
SAFE_ZONE_LINE = (255, 0, 80)
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}

Box = tuple[int, int, int, int]


def crop_box(size: tuple[int, int], ratio: float, centre: tuple[float, float]) -> Box:
    """The largest box of `ratio` (width / height) inside `size`, centred on `centre`
    (pixels) as far as the image's edges allow."""
    width, height = size
    crop_w = min(width, max(1, round(height * ratio)))
    crop_h = min(height, max(1, round(crop_w / ratio)))
    left = min(max(0, round(centre[0] - crop_w / 2)), width - crop_w)
    top = min(max(0, round(centre[1] - crop_h / 2)), height - crop_h)
    return left, top, left + crop_w, top + crop_h


def smart_box(image: Image.Image, ratio: float) -> Box:
    """The box of `ratio` smartcrop scores highest (full height or full width of the image)."""
    width, height = image.size
    scale = min(1.0, ANALYSIS_SIDE / max(width, height))
    small = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR).convert("RGB")
    left, top, right, bottom = crop_box(small.size, ratio, (small.width / 2, small.height / 2))
    if (right - left, bottom - top) == small.size or min(right - left, bottom - top) < MIN_ANALYSIS_SIDE:
        # The ratio is the image's own (nothing to choose), or too thin a window to score.
        return crop_box(image.size, ratio, (width / 2, height / 2))
    best = SmartCrop().crop(small, right - left, bottom - top, prescale=False, step=max(1, min(small.size) // 64))["top_crop"]
    centre = ((best["x"] + best["width"] / 2) / scale, (best["y"] + best["height"] / 2) / scale)
    return crop_box(image.size, ratio, centre)


def choose_box(image: Image.Image, fmt: SocialFormat, mode: str, focal_point: FocalPoint | None) -> Box:
    """Where to cut `image` for `fmt` in the `smart` or `center` mode."""
    ratio = fmt.width / fmt.height
    if focal_point is not None:
        return crop_box(image.size, ratio, (focal_point.x * image.width, focal_point.y * image.height))
    if mode == "smart":
        return smart_box(image, ratio)
    return crop_box(image.size, ratio, (image.width / 2, image.height / 2))


def letterbox(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The whole image scaled to fit `size`, centred on a blurred copy of its middle that covers it."""
    width, height = size
    scale = min(width / image.width, height / image.height)
    inner = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    # The background is made at an eighth of the size (blurred there, cheaply) from the centre
    # crop of the format's ratio: never larger than the output, whatever the two ratios.
    middle = crop_box(image.size, width / height, (image.width / 2, image.height / 2))
    small = image.resize((max(1, width // 8), max(1, height // 8)), Image.Resampling.BILINEAR, box=middle)
    canvas = small.filter(ImageFilter.GaussianBlur(4)).resize(size, Image.Resampling.BILINEAR)
    canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
    return canvas


def safe_area(size: tuple[int, int], zone: SafeZone) -> Box:
    """The box of `size` outside the zone's margins."""
    width, height = size
    return round(zone.left * width), round(zone.top * height), width - round(zone.right * width), height - round(zone.bottom * height)


def draw_safe_zones(image: Image.Image, zone: SafeZone) -> Image.Image:
    """The image with its unsafe margins tinted and the safe area outlined."""
    left, top, right, bottom = safe_area(image.size, zone)
    overlay = Image.new("RGBA", image.size, SAFE_ZONE_TINT)
    ImageDraw.Draw(overlay).rectangle((left, top, right - 1, bottom - 1), fill=(0, 0, 0, 0))
    out = Image.alpha_composite(image.convert("RGBA"), overlay)
    line = max(1, min(image.size) // 270)  # 4 px on a 1080 px side
    draw = ImageDraw.Draw(out)
    edges = {  # the safe area's border on each side that has a margin (none on the image's own edge)
        "top": ((left, top), (right - 1, top + line - 1)),
        "bottom": ((left, bottom - line), (right - 1, bottom - 1)),
        "left": ((left, top), (left + line - 1, bottom - 1)),
        "right": ((right - line, top), (right - 1, bottom - 1)),
    }
    for side, box in edges.items():
        if getattr(zone, side) > 0:
            draw.rectangle(box, fill=SAFE_ZONE_LINE)
    return out if "A" in image.getbands() else out.convert("RGB")


def encode_within(image: Image.Image, output_format: str, max_bytes: int, parameters: dict) -> tuple[bytes, dict]:
    """(file bytes, how they were encoded) at the best quality that fits `max_bytes`.

    JPEG: quality 92, then lower (JPEG_QUALITIES) until it fits. PNG: lossless (optimised),
    then quantised to 256, 128, 64 colours with dithering. Raises OutputTooLarge when even
    the last step is too large (the run then fails; jpg fits where png cannot)."""
    text = json.dumps(parameters, sort_keys=True, default=str)
    if output_format == "jpg":
        rgb = flatten(image)
        for quality in JPEG_QUALITIES:
            data = _save(rgb, format="JPEG", quality=quality, optimize=True, comment=text.encode())
            if len(data) <= max_bytes:
                return data, {"quality": quality}
        raise OutputTooLarge(f"{len(data)} bytes at JPEG quality {quality}; the format takes at most {max_bytes}")
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, text)
    data = _save(image, format="PNG", pnginfo=info)
    if len(data) <= max_bytes:
        return data, {"colours": "full"}
    data = _save(image, format="PNG", pnginfo=info, optimize=True)
    if len(data) <= max_bytes:
        return data, {"colours": "full", "optimized": True}
    method = Image.Quantize.FASTOCTREE if image.mode == "RGBA" else Image.Quantize.MEDIANCUT
    for colours in PNG_COLOURS:
        data = _save(image.quantize(colours, method=method, dither=Image.Dither.FLOYDSTEINBERG), format="PNG", pnginfo=info, optimize=True)
        if len(data) <= max_bytes:
            return data, {"colours": colours}
    raise OutputTooLarge(f"{len(data)} bytes as a {colours}-colour PNG; the format takes at most {max_bytes} (try output_format jpg)")


def flatten(image: Image.Image) -> Image.Image:
    """RGB: transparent pixels on white (JPEG has no alpha channel)."""
    if "A" not in image.getbands():
        return image.convert("RGB")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.convert("RGBA").getchannel("A"))
    return background


def _save(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


class SocialFormatsPipeline(Pipeline):
    """The image in every format of the request: crop (or letterbox), resize to the exact
    size, optional safe-zone overlay, encoded within the format's max file size."""

    operation = "social-formats"

    def render(
        self,
        request: SocialFormatsRequest,
        on_progress: ProgressCallback | None = None,
        images: dict[str, Image.Image] | None = None,
    ) -> list[GeneratedImage]:
        source = images["image"]
        source = source.convert("RGBA" if "A" in source.getbands() or source.mode == "P" and "transparency" in source.info else "RGB")
        if request.output_format == "jpg":
            source = flatten(source)
        outputs = []
        for done, fmt in enumerate(request.formats, start=1):
            size = (fmt.width, fmt.height)
            box = None
            if request.crop_mode == "fit":
                image = letterbox(source, size)
            else:
                box = choose_box(source, fmt, request.crop_mode, request.focal_point)
                image = source.resize(size, Image.Resampling.LANCZOS, box=box)
            if request.show_safe_zones:
                image = draw_safe_zones(image, fmt.safe_zone)
            parameters = {
                "operation": self.operation, "platform": fmt.platform, "format_id": fmt.format_id, "format": fmt.name,
                "crop_mode": request.crop_mode, "crop_box": box, "focal_point": request.focal_point and request.focal_point.model_dump(),
                "image_asset_id": request.image_asset_id,
            }
            data, encoding = encode_within(image, request.output_format, fmt.max_bytes, parameters)
            outputs.append(GeneratedImage(
                image=image, seed=0, parameters=parameters | {"encoding": encoding},
                encoded=data, content_type=CONTENT_TYPES[request.output_format],
                labels={"platform": fmt.platform, "format_id": fmt.format_id, "format_name": fmt.name},
            ))
            if on_progress is not None and on_progress(done, len(request.formats)) is False:
                raise RenderInterrupted
        return outputs
