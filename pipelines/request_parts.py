"""What the operations' requests share: limits stated once (they reach the OpenAPI schema),
sizes, seeds, input images, and the companion models of control requests. Pydantic only."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

MIN_SIDE = 64
MAX_SIDE = 2048
MAX_PROMPT = 2000
MAX_SEED = 2**32 - 1
ASSUMED_SIDE = 512  # output side a cost estimate assumes when neither the request nor an input gives one

Size = tuple[int, int]


def render_side(side: int) -> int:
    """The side a model renders to give an exact `side`: the next multiple of 8."""
    return -(-side // 8) * 8


class RenderRequest(BaseModel):
    """What every operation's request answers, so that neither the API nor the worker has to
    probe a request for what it supports. Each operation's request overrides what differs."""

    def input_assets(self) -> dict[str, str]:
        """Input slot → asset id, for the worker to load."""
        return {}

    def check_input_sizes(self, sizes: dict[str, Size]) -> None:
        """Raise InputSizeError when an input breaks this operation's size rules."""

    def control_needs(self) -> ControlNeeds | None:
        """The companion models (ControlNet, IP-Adapter, depth model) it renders with, if any."""
        return None

    def mask_model(self) -> str:
        """The text-segmentation model that finds what to edit ("": the first served), if any."""
        return ""

    @property
    def uses_model(self) -> bool:
        """False when this request needs no model at all (a fast upscale)."""
        return True

    def steps(self) -> int:
        """Denoising steps asked for (0 for operations without any)."""
        return 0

    def render_key(self, input_sizes: dict[str, Size]) -> tuple | None:
        """What must be equal for requests to render in one model call with this one, besides
        the operation, model and LoRAs (prompts, seeds and input images may differ), given its
        input images' sizes; None: rendered alone."""
        return None

    def image_count(self) -> int:
        return 1

    def output_size(self, input_size: Size | None) -> Size | None:
        """The size of each output, from the main input image's (None: no input): the input's own
        by default."""
        return input_size

    def output_sizes(self, inputs: dict[str, Size]) -> tuple[list[Size], str | None]:
        """The size of each image this request will produce, and what had to be assumed for it
        (an input image whose size is not known yet): what a cost estimate prices."""
        assumed = None
        image = inputs.get("image") or next(iter(inputs.values()), None)
        if image is None and "image_asset_id" in type(self).model_fields:
            image = (ASSUMED_SIDE, ASSUMED_SIDE)
            assumed = f"an input image of {ASSUMED_SIDE}×{ASSUMED_SIDE} (give input_width/input_height, the image or its asset id)"
        size = self.output_size(image)
        if size is None:
            size, assumed = (ASSUMED_SIDE, ASSUMED_SIDE), f"an output of {ASSUMED_SIDE}×{ASSUMED_SIDE}"
        return [size] * self.image_count(), assumed


class Sized(RenderRequest):
    """A request that says its output's width and height (text-to-image, style)."""

    def output_size(self, input_size: Size | None) -> Size:
        return self.width, self.height


class ExactSize(Sized):
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


class Seeded(RenderRequest):
    """A denoising request: `num_inference_steps`, and `num_images` images, image i rendered
    with its own seed, seed + i."""

    def steps(self) -> int:
        return self.num_inference_steps

    def image_count(self) -> int:
        return self.num_images

    def image_seeds(self) -> list[int]:
        """Seed of each image: consecutive from `seed`, wrapping inside the 32-bit range."""
        if self.seed is None:
            raise ValueError("seed must be fixed before rendering")
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.num_images)]


class InputSizeError(ValueError):
    """An input image breaks a size rule of its operation (answered as a 422 at submit)."""


def fit_side(side: int) -> int:
    """A side the diffusion models take: a multiple of 8 within MIN_SIDE..MAX_SIDE."""
    return max(MIN_SIDE, min(MAX_SIDE, side // 8 * 8))


def check_diffusion_input(name: str, size: tuple[int, int]) -> None:
    width, height = size
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        raise InputSizeError(f"{name} is {width}×{height}; each side must be {MIN_SIDE}–{MAX_SIDE} pixels")


class ImageInput(RenderRequest):
    image_asset_id: str = Field(..., description="Asset id of the input image.")

    def input_assets(self) -> dict[str, str]:
        return {"image": self.image_asset_id}

    def check_input_sizes(self, sizes: dict[str, Size]) -> None:
        check_diffusion_input("the image", sizes["image"])


class DiffusionRequest(Seeded):
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


MAX_GROW_MASK = 20  # as Stability AI's search-and-replace/recolor (which ALwrity calls) bound it


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

    def mask_model(self) -> str:
        return self.mask_model_id

    def search_text(self) -> str:
        """The words the segmentation model looks for."""
        raise NotImplementedError

    def inpaint_prompt(self) -> str:
        """The prompt the inpainting model paints the found region with."""
        return self.prompt


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


class StyleImageInput(RenderRequest):
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
