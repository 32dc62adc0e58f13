"""Typed requests the pipelines take. Limits are stated once here and reach the OpenAPI schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

MIN_SIDE = 64
MAX_SIDE = 2048
MAX_PROMPT = 2000
MAX_SEED = 2**32 - 1


def render_side(side: int) -> int:
    """The side a model renders to give an exact `side`: the next multiple of 8."""
    return -(-side // 8) * 8


class ExactSize(BaseModel):
    """An output size that is not a multiple of 8 (a template's 1200×628): the model renders at
    width×height, the next multiples of 8 (1200×632), and the images are center-cropped to
    output_width×output_height (at most 7 pixels off a side, nothing stretched)."""

    output_width: int | None = Field(
        None, ge=MIN_SIDE, le=MAX_SIDE,
        description="Exact width of the returned images when it is not a multiple of 8: `width` must then be "
        "the next multiple of 8 (1200×628 renders at 1200×632, center-cropped). Templates set it.",
    )
    output_height: int | None = Field(
        None, ge=MIN_SIDE, le=MAX_SIDE,
        description="Exact height of the returned images; `height` must be the next multiple of 8 above it.",
    )

    @model_validator(mode="after")
    def _render_size_fits(self):
        for exact, side in (("output_width", "width"), ("output_height", "height")):
            value = getattr(self, exact)
            if value is not None and getattr(self, side) != render_side(value):
                raise ValueError(f"{exact} {value} needs {side} {render_side(value)} (the next multiple of 8)")
        return self

    def exact_crop(self, image):
        """The image center-cropped to the exact output size (unchanged without one)."""
        width = self.output_width or image.width
        height = self.output_height or image.height
        if (width, height) == image.size:
            return image
        left, top = (image.width - width) // 2, (image.height - height) // 2
        return image.crop((left, top, left + width, top + height))


class TextToImageRequest(ExactSize):
    """What a text-to-image render needs, independent of which model runs it."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="What to draw (1–2000 characters)."
    )
    negative_prompt: str = Field(
        "", max_length=MAX_PROMPT, description="What to steer away from (≤ 2000 characters)."
    )
    width: int = Field(
        512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Pixels; a multiple of 8 from 64 to 2048."
    )
    height: int = Field(
        512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Pixels; a multiple of 8 from 64 to 2048."
    )
    num_inference_steps: int = Field(25, ge=1, le=150, description="Denoising steps (1–150).")
    guidance_scale: float = Field(
        7.5, ge=0, le=30, description="Classifier-free guidance (0–30); ≤ 1 disables it."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="Seed of the first image; image i uses seed + i. Chosen at random when omitted.",
    )
    num_images: int = Field(
        1,
        ge=1,
        le=4,
        # LimeWire calls it `samples`, Livepeer `num_images_per_prompt`.
        validation_alias=AliasChoices("num_images", "samples", "num_images_per_prompt"),
        description="Images to render (1–4), each its own seed; aliases `samples`, `num_images_per_prompt`.",
    )

    def image_seeds(self) -> list[int]:
        """Seed of each image: consecutive from `seed`, wrapping inside the 32-bit range."""
        if self.seed is None:
            raise ValueError("seed must be fixed before rendering")
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.num_images)]


# --- image operations -------------------------------------------------------------------
# Input images travel as asset ids: the worker reads the stored bytes and hands the pipeline
# decoded images (`images={"image": ..., "mask": ...}`), so a request stays plain JSON.

# LimeWire's upscaling input limits, per factor (their documented maximum image sizes).
UPSCALE_MAX_INPUT: dict[int, tuple[int, int]] = {2: (1024, 1024), 3: (680, 680), 4: (1256, 1256)}
MAX_UPSCALE_SIDE = 8192
MAX_EXPAND = 1024

OutpaintDirection = Literal["UP", "DOWN", "LEFT", "RIGHT", "ALL"]
CropSide = Literal["LEFT", "RIGHT", "TOP", "BOTTOM"]


class InputSizeError(ValueError):
    """An input image breaks a size rule of its operation (answered as a 422 at submit)."""


def fit_side(side: int) -> int:
    """A side the diffusion models take: a multiple of 8 within MIN_SIDE..MAX_SIDE."""
    return max(MIN_SIDE, min(MAX_SIDE, side // 8 * 8))


def check_diffusion_input(name: str, size: tuple[int, int]) -> None:
    width, height = size
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        raise InputSizeError(f"{name} is {width}×{height}; each side must be {MIN_SIDE}–{MAX_SIDE} pixels")


class ImageInput(BaseModel):
    image_asset_id: str = Field(..., description="Asset id of the input image.")

    def input_assets(self) -> dict[str, str]:
        """Input slot → asset id, for the worker to load."""
        return {"image": self.image_asset_id}

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        """Raise InputSizeError when an input breaks this operation's size rules."""
        check_diffusion_input("the image", sizes["image"])


class DiffusionRequest(BaseModel):
    """Fields every diffusion operation shares."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT, description="What to draw (1–2000 characters).")
    negative_prompt: str = Field("", max_length=MAX_PROMPT, description="What to steer away from (≤ 2000 characters).")
    num_inference_steps: int = Field(25, ge=1, le=150, description="Denoising steps (1–150); img2img runs steps × strength of them.")
    guidance_scale: float = Field(7.5, ge=0, le=30, description="Classifier-free guidance (0–30); ≤ 1 disables it.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Seed of the first image; image i uses seed + i.")
    num_images: int = Field(
        1, ge=1, le=4,
        validation_alias=AliasChoices("num_images", "samples", "num_images_per_prompt"),
        description="Images to render (1–4), each its own seed; aliases `samples` (LimeWire), `num_images_per_prompt` (Livepeer).",
    )

    image_seeds = TextToImageRequest.image_seeds


class ImageToImageRequest(ExactSize, ImageInput, DiffusionRequest):
    strength: float = Field(0.8, ge=0, le=1, description="How far to move from the input image (0 keeps it, 1 ignores it).")
    width: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Output width; the input's (rounded down to 8) when omitted.")
    height: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Output height; the input's (rounded down to 8) when omitted.")

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return self.width or fit_side(input_size[0]), self.height or fit_side(input_size[1])


class VariationsRequest(ImageToImageRequest):
    """Variations of an image: image-to-image with an optional prompt, several seeds."""

    prompt: str = Field("", max_length=MAX_PROMPT, description="Optional steer for the variations.")
    strength: float = Field(0.6, ge=0, le=1, description="How far each variation may move from the input (0–1).")
    num_images: int = Field(
        4, ge=1, le=4,
        validation_alias=AliasChoices("num_images", "samples", "num_images_per_prompt"),
        description="Variations to render (1–4), each its own seed; aliases `samples`, `num_images_per_prompt`.",
    )


class InpaintRequest(ImageInput, DiffusionRequest):
    mask_asset_id: str | None = Field(None, description="Asset id of a mask image; white (or the mask colour) is repainted.")
    mask_color_rgba: list[int] | None = Field(
        None, min_length=4, max_length=4,
        description="LimeWire: pixels of this [r,g,b,a] colour are repainted, looked up in the mask image when one is "
        "given, else in the input image. Default [0,0,0,0] (transparent pixels) when there is no mask image.",
    )
    mask_color_threshold: int = Field(
        0, ge=0, le=100,
        description="LimeWire: percent each channel may deviate from mask_color_rgba ([255,255,255,255] with 10 "
        "masks [230,230,230,230]–[255,255,255,255]).",
    )
    strength: float = Field(1.0, ge=0, le=1, description="How far to move from the input inside the mask (0–1).")

    @model_validator(mode="after")
    def _check_colour(self) -> "InpaintRequest":
        if self.mask_color_rgba is not None and not all(0 <= v <= 255 for v in self.mask_color_rgba):
            raise ValueError("mask_color_rgba values must be 0–255")
        return self

    def input_assets(self) -> dict[str, str]:
        return super().input_assets() | ({"mask": self.mask_asset_id} if self.mask_asset_id else {})

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        super().check_input_sizes(sizes)
        if "mask" in sizes and sizes["mask"] != sizes["image"]:
            raise InputSizeError(f"the mask is {sizes['mask'][0]}×{sizes['mask'][1]}; it must be the image's size {sizes['image'][0]}×{sizes['image'][1]}")


class OutpaintRequest(ImageInput, DiffusionRequest):
    prompt: str = Field("", max_length=MAX_PROMPT, description="What the new area should show (optional).")
    direction: OutpaintDirection | None = Field(
        None, description="LimeWire: extend UP/DOWN by half the height, LEFT/RIGHT by half the width, ALL by a quarter on every side."
    )
    crop_side: CropSide | None = Field(
        None, description="LimeWire: the side cropped when the extended image would pass 2048 pixels on a side."
    )
    expand_left: int = Field(0, ge=0, le=MAX_EXPAND, description="ALwrity: pixels added on the left (0–1024).")
    expand_right: int = Field(0, ge=0, le=MAX_EXPAND, description="ALwrity: pixels added on the right (0–1024).")
    expand_up: int = Field(0, ge=0, le=MAX_EXPAND, description="ALwrity: pixels added on top (0–1024).")
    expand_down: int = Field(0, ge=0, le=MAX_EXPAND, description="ALwrity: pixels added at the bottom (0–1024).")
    strength: float = Field(1.0, ge=0, le=1, description="Denoising strength in the new area.")

    @model_validator(mode="after")
    def _one_way(self) -> "OutpaintRequest":
        expands = (self.expand_left, self.expand_right, self.expand_up, self.expand_down)
        if self.direction is not None and any(expands):
            raise ValueError("give either direction or expand_left/right/up/down, not both")
        if self.direction is None and not any(expands):
            raise ValueError("give a direction (UP, DOWN, LEFT, RIGHT, ALL) or at least one expand_* above 0")
        return self

    def padding(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) pixels to add before any crop."""
        width, height = size
        if self.direction is None:
            return self.expand_left, self.expand_up, self.expand_right, self.expand_down
        half_w, half_h = width // 2, height // 2
        return {
            "UP": (0, half_h, 0, 0),
            "DOWN": (0, 0, 0, half_h),
            "LEFT": (half_w, 0, 0, 0),
            "RIGHT": (0, 0, half_w, 0),
            "ALL": (width // 4, height // 4, width // 4, height // 4),
        }[self.direction]

    def canvas(self, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """Output size, and the box (left, top, right, bottom) of the padded canvas it keeps:
        the canvas is cropped on `crop_side` where it would pass MAX_SIDE."""
        left, top, right, bottom = self.padding(size)
        width, height = size[0] + left + right, size[1] + top + bottom
        over_w, over_h = max(0, width - MAX_SIDE), max(0, height - MAX_SIDE)
        if (over_w or over_h) and self.crop_side is None:
            raise InputSizeError(f"the outpainted image would be {width}×{height}, over {MAX_SIDE}; give crop_side to allow a crop")
        if over_w and self.crop_side not in ("LEFT", "RIGHT") or over_h and self.crop_side not in ("TOP", "BOTTOM"):
            raise InputSizeError(f"the outpainted image would be {width}×{height}; crop_side {self.crop_side} cannot bring it within {MAX_SIDE}")
        box = (
            over_w if self.crop_side == "LEFT" else 0,
            over_h if self.crop_side == "TOP" else 0,
            width - (over_w if self.crop_side == "RIGHT" else 0),
            height - (over_h if self.crop_side == "BOTTOM" else 0),
        )
        return (box[2] - box[0], box[3] - box[1]), box

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        super().check_input_sizes(sizes)
        self.canvas(sizes["image"])


class UpscaleRequest(ImageInput):
    model_config = ConfigDict(extra="forbid")

    upscale_factor: Literal[2, 3, 4] | None = Field(
        None,
        description="LimeWire: 2, 3 or 4. Largest input: ×2 1024×1024 (1,048,576 px), ×3 680×680 (462,400 px), "
        "×4 1256×1256 (1,577,536 px). Omit it to give target_width/target_height instead.",
    )
    target_width: int | None = Field(None, ge=1, le=MAX_UPSCALE_SIDE, description="ALwrity: output width (≤ 8192); the aspect ratio is kept when only one side is given.")
    target_height: int | None = Field(None, ge=1, le=MAX_UPSCALE_SIDE, description="ALwrity: output height (≤ 8192).")
    mode: Literal["fast", "model"] = Field(
        "model",
        description="`fast`: Lanczos resampling, no model. `model`: the deployment's super-resolution model, "
        "then Lanczos to the exact size.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> "UpscaleRequest":
        targets = self.target_width is not None or self.target_height is not None
        if self.upscale_factor is not None and targets:
            raise ValueError("give either upscale_factor or target_width/target_height, not both")
        if self.upscale_factor is None and not targets:
            raise ValueError("give upscale_factor (2, 3, 4) or target_width/target_height")
        return self

    @property
    def uses_model(self) -> bool:
        """False in `fast` mode: the worker then loads no upscaler for this run."""
        return self.mode == "model"

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        width, height = size
        if self.upscale_factor is not None:
            return width * self.upscale_factor, height * self.upscale_factor
        if self.target_width and self.target_height:
            return self.target_width, self.target_height
        if self.target_width:
            return self.target_width, max(1, round(height * self.target_width / width))
        return max(1, round(width * self.target_height / height)), self.target_height

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        width, height = sizes["image"]
        if self.upscale_factor is not None:
            max_w, max_h = UPSCALE_MAX_INPUT[self.upscale_factor]
            if width * height > max_w * max_h:
                raise InputSizeError(
                    f"the image is {width}×{height}; ×{self.upscale_factor} takes at most {max_w}×{max_h} ({max_w * max_h} pixels)"
                )
        out_w, out_h = self.output_size((width, height))
        if out_w < width or out_h < height:
            raise InputSizeError(f"target {out_w}×{out_h} is smaller than the image ({width}×{height}); upscaling only grows")
        if max(out_w, out_h) > MAX_UPSCALE_SIDE:
            raise InputSizeError(f"the output would be {out_w}×{out_h}; each side is at most {MAX_UPSCALE_SIDE}")


class RemoveBackgroundRequest(ImageInput):
    model_config = ConfigDict(extra="forbid")

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        return None  # any size the pixel limit allows


# --- edit by words ------------------------------------------------------------------------

MAX_GROW_MASK = 20  # as Stability AI's search-and-replace/recolor (which ALwrity calls) bound it
MAX_IMAGE_GUIDANCE = 10.0


class SearchEditRequest(ImageInput, DiffusionRequest):
    """What search-replace and search-recolor share: a text-segmentation model finds the
    region from words, then the base model inpaints it."""

    mask_model_id: str = Field(
        "", max_length=200,
        description="A text-segmentation model from GET /v1/models that finds the region; the first listed when empty.",
    )
    mask_threshold: float = Field(
        0.4, ge=0, le=1,
        description="A pixel joins the mask when the segmentation model's probability that it shows the searched "
        "thing is above this (0–1; lower takes more, 1 takes nothing).",
    )
    grow_mask: int = Field(
        3, ge=0, le=MAX_GROW_MASK,
        description="Pixels to grow the found mask by in every direction (0–20, as Stability AI), so the edit "
        "covers the object's edges.",
    )
    return_mask: bool = Field(
        False,
        description="Also return the mask as a last output image: black-and-white (white = repainted), "
        'marked `"role": "mask"` in the run\'s images.',
    )

    @model_validator(mode="after")
    def _some_steps(self) -> "SearchEditRequest":
        if int(self.num_inference_steps * self.strength) < 1:  # diffusers runs steps × strength of them
            raise ValueError("num_inference_steps × strength must be at least 1 (the model would run no step)")
        return self

    def search_text(self) -> str:
        """The words the segmentation model looks for."""
        raise NotImplementedError

    def inpaint_prompt(self) -> str:
        """The prompt the inpainting model paints the found region with."""
        return self.prompt


class SearchReplaceRequest(SearchEditRequest):
    search_prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="What to find and replace, in words (e.g. \"the cat\")."
    )
    prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="What to put in its place (e.g. \"a golden retriever\")."
    )
    strength: float = Field(
        1.0, ge=0, le=1, description="How far to move from the input inside the mask (0–1; 1 paints anew)."
    )

    def search_text(self) -> str:
        return self.search_prompt


class SearchRecolorRequest(SearchEditRequest):
    select_prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="What to recolour, in words (e.g. \"the car\")."
    )
    prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT,
        description="The new colour or material (e.g. \"glossy red\"); the model is prompted with "
        "\"{prompt} {select_prompt}\".",
    )
    strength: float = Field(
        0.75, ge=0, le=1,
        description="How far to move from the input inside the mask (0–1). Below 1 the object's shape and "
        "shading carry over while its colour changes.",
    )

    def search_text(self) -> str:
        return self.select_prompt

    def inpaint_prompt(self) -> str:
        return f"{self.prompt} {self.select_prompt}"


class GeneralEditRequest(ImageInput, DiffusionRequest):
    """An edit given as an instruction, run by an InstructPix2Pix model."""

    prompt: str = Field(
        ..., min_length=1, max_length=MAX_PROMPT, description="The edit as an instruction (e.g. \"make it winter\")."
    )
    image_guidance_scale: float = Field(
        1.5, ge=0, le=MAX_IMAGE_GUIDANCE,
        description="Livepeer: how closely the output keeps to the input image (0–10, default 1.5; higher keeps "
        "more). Below 1 both guidances are off (diffusers' rule), as with guidance_scale ≤ 1.",
    )


# --- control: sketch, structure, style, style-transfer ---------------------------------------
# ALwrity's parameter names, 0–1; defaults are Stability AI's (the provider ALwrity calls).

StructureType = Literal["edges", "depth"]


@dataclass(frozen=True)
class ControlNeeds:
    """The companion models a control request renders with, beside its base model."""

    control_types: tuple[str, ...] = ()  # acceptable ControlNet control types, preferred first
    ip_adapter: bool = False
    depth_estimator: bool = False
    controlnet_id: str = ""  # the ControlNet / IP-Adapter the request names; "": the first that fits the base
    ip_adapter_id: str = ""


class ControlNetOptions(BaseModel):
    """What a request rendering through a ControlNet takes besides its knobs."""

    controlnet_id: str = Field(
        "", max_length=200,
        description="A ControlNet from GET /v1/models (kind `controlnet`) of a control type this operation takes, "
        "fitting the base model; the first that fits when empty (the run records the one used).",
    )
    return_control_map: bool = Field(
        False,
        description="Also return the control map the ControlNet was given (line art, Canny edges or depth, white on "
        'black, at the output size) as a last output image marked `"role": "control"`; not charged.',
    )


class IPAdapterChoice(BaseModel):
    ip_adapter_id: str = Field(
        "", max_length=200,
        description="An IP-Adapter from GET /v1/models (kind `ip-adapter`) fitting the base model; the first that "
        "fits when empty (the run records the one used).",
    )


class StyleImageInput(BaseModel):
    style_image_asset_id: str = Field(..., description="Asset id of the style reference image.")

    def input_assets(self) -> dict[str, str]:
        return {"style_image": self.style_image_asset_id}


class ControlRequest(ControlNetOptions, ImageInput, DiffusionRequest):
    """A ControlNet render: the control map made from the input image steers every step."""

    control_strength: float = Field(
        0.7, ge=0, le=1,
        description="ALwrity: how closely the image follows the control image (0–1, default 0.7); the ControlNet's "
        "conditioning scale (0 ignores the control image).",
    )

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """The control image's size rounded down to a multiple of 8 (what the model takes)."""
        return fit_side(input_size[0]), fit_side(input_size[1])


class SketchRequest(ControlRequest):
    def control_needs(self) -> ControlNeeds:
        return ControlNeeds(control_types=("lineart", "scribble"), controlnet_id=self.controlnet_id)


class StructureRequest(ControlRequest):
    structure_type: StructureType = Field(
        "edges",
        description="What of the input image is kept: `edges` (Canny edges, no model; default) or `depth` (a depth "
        "map from the deployment's depth-estimation model).",
    )

    def control_needs(self) -> ControlNeeds:
        if self.structure_type == "depth":
            return ControlNeeds(control_types=("depth",), depth_estimator=True, controlnet_id=self.controlnet_id)
        return ControlNeeds(control_types=("canny",), controlnet_id=self.controlnet_id)


class StyleRequest(IPAdapterChoice, StyleImageInput, DiffusionRequest):
    """Text-to-image in the style of a reference image (IP-Adapter)."""

    fidelity: float = Field(
        0.5, ge=0, le=1,
        description="ALwrity: how closely the output follows the style image (0–1, default 0.5); the IP-Adapter scale.",
    )
    width: int = Field(512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Pixels; a multiple of 8 from 64 to 2048.")
    height: int = Field(512, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8, description="Pixels; a multiple of 8 from 64 to 2048.")

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        return None  # the image encoder resizes the reference; any size the pixel limit allows

    def control_needs(self) -> ControlNeeds:
        return ControlNeeds(ip_adapter=True, ip_adapter_id=self.ip_adapter_id)


class StyleTransferRequest(ControlNetOptions, IPAdapterChoice, StyleImageInput, ImageInput, DiffusionRequest):
    """Restyle a content image after a style image: image-to-image from the content image,
    a Canny ControlNet on the content's edges keeping its composition, an IP-Adapter on the
    style image."""

    prompt: str = Field("", max_length=MAX_PROMPT, description="Optional steer (≤ 2000 characters).")
    style_strength: float = Field(
        1.0, ge=0, le=1, description="ALwrity: how strongly the style image's look is applied (0–1, default 1); the IP-Adapter scale.",
    )
    composition_fidelity: float = Field(
        0.9, ge=0, le=1,
        description="ALwrity: how closely the content image's composition is kept (0–1, default 0.9); the conditioning "
        "scale of a Canny ControlNet on the content image's edges.",
    )
    change_strength: float = Field(
        0.9, ge=0, le=1,
        description="ALwrity: how far the output may move from the content image (0–1, default 0.9); the image-to-image "
        "strength (diffusers runs steps × change_strength of them; 0 returns the content image).",
    )

    def input_assets(self) -> dict[str, str]:
        return ImageInput.input_assets(self) | StyleImageInput.input_assets(self)

    output_size = ControlRequest.output_size

    def control_needs(self) -> ControlNeeds:
        return ControlNeeds(control_types=("canny",), ip_adapter=True, controlnet_id=self.controlnet_id,
                            ip_adapter_id=self.ip_adapter_id)


# --- social formats ---------------------------------------------------------------------
MAX_SOCIAL_OUTPUTS = 32
MAX_FORMAT_SIDE = 4096


class SafeZone(BaseModel):
    """Margins a platform's interface may cover, as fractions of the image's height (top,
    bottom) and width (left, right): keep text and faces out of them."""

    model_config = ConfigDict(extra="forbid")

    top: float = Field(0, ge=0, le=0.5, description="Fraction of the height from the top edge (0–0.5).")
    bottom: float = Field(0, ge=0, le=0.5, description="Fraction of the height from the bottom edge (0–0.5).")
    left: float = Field(0, ge=0, le=0.5, description="Fraction of the width from the left edge (0–0.5).")
    right: float = Field(0, ge=0, le=0.5, description="Fraction of the width from the right edge (0–0.5).")


class SocialFormat(BaseModel):
    """One output size of a platform, as the platform catalog described it at submit time."""

    model_config = ConfigDict(extra="forbid")

    platform: str = Field(..., max_length=40, description="Platform id (instagram, x, …).")
    format_id: str = Field(..., max_length=60, description="The format's slug id (feed-square, story, …).")
    name: str = Field(..., max_length=100, description="The format's name (ALwrity's `format`).")
    width: int = Field(..., ge=1, le=MAX_FORMAT_SIDE)
    height: int = Field(..., ge=1, le=MAX_FORMAT_SIDE)
    safe_zone: SafeZone = Field(default_factory=SafeZone)
    max_bytes: int = Field(..., gt=0, description="Largest file the platform takes; outputs are re-encoded to fit.")


class FocalPoint(BaseModel):
    """A point of the input image, as fractions of its width (x) and height (y)."""

    model_config = ConfigDict(extra="forbid")

    x: float = Field(..., ge=0, le=1, description="0 is the left edge, 1 the right edge.")
    y: float = Field(..., ge=0, le=1, description="0 is the top edge, 1 the bottom edge.")


class SocialFormatsOptions(BaseModel):
    """How an image is cut to social formats (ALwrity's social optimizer fields)."""

    model_config = ConfigDict(extra="forbid")

    crop_mode: Literal["smart", "center", "fit"] = Field(
        "smart",
        description="`smart` (default): the crop of the format's ratio that keeps what the image shows (edges, "
        "skin tones, saturated detail; smartcrop). `center`: the middle. `fit`: the whole image, scaled down and "
        "letterboxed on a blurred copy of itself.",
    )
    focal_point: FocalPoint | None = Field(
        None,
        description="Centre the crop here, {x, y} as fractions 0–1 of the width and height: takes precedence over "
        "what smart sees, and moves the center crop. Not with `fit` (it crops nothing).",
    )
    show_safe_zones: bool = Field(False, description="Tint the margins the platform's interface may cover, and outline the safe area.")
    output_format: Literal["png", "jpg"] = Field("png", description="png (default) or jpg; alias `jpeg` accepted.")

    @field_validator("output_format", mode="before")
    @classmethod
    def _jpeg_alias(cls, value):
        return "jpg" if isinstance(value, str) and value.lower() in ("jpeg", "jpg") else value

    @model_validator(mode="after")
    def _focal_point_crops(self) -> "SocialFormatsOptions":
        if self.focal_point is not None and self.crop_mode == "fit":
            raise ValueError("focal_point places a crop; crop_mode fit crops nothing (use smart or center)")
        return self


class SocialFormatsRequest(ImageInput, SocialFormatsOptions):
    """One image cut to several platforms' formats; model-free."""

    formats: list[SocialFormat] = Field(
        ..., min_length=1, max_length=MAX_SOCIAL_OUTPUTS, description="The formats rendered, one output each, in order."
    )

    def check_input_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        return None  # any size the pixel limit allows: outputs are resized to each format

    def output_sizes(self, input_sizes: dict[str, tuple[int, int]]) -> list[tuple[int, int]]:
        """One output per format, at the format's size (what a cost estimate prices)."""
        return [(f.width, f.height) for f in self.formats]
