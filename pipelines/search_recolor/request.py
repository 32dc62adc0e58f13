"""What search-recolor takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import Field

from ..request_parts import MAX_PROMPT, SearchEditRequest
from ..operation import EXAMPLE_ASSET, IMAGE, Operation


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


OPERATION = Operation(
    name="search-recolor",
    summary="Find something by words and change its colour or material; other pixels are kept.",
    request=SearchRecolorRequest,
    pipeline="SearchRecolorPipeline",
    model_kind="base",
    diffusers_task="inpaint",
    mask_model_kind="text-segmentation",
    slots=(IMAGE,),
    quality=True,
    examples=({
        "image_asset_id": EXAMPLE_ASSET, "select_prompt": "the car", "prompt": "glossy red",
        "grow_mask": 3, "strength": 0.75, "seed": 7,
    },),
)
