"""What search-replace takes: its typed request and its operation declaration."""

from __future__ import annotations

from pydantic import Field

from ..request_parts import MAX_PROMPT, SearchEditRequest
from ..operation import EXAMPLE_ASSET, IMAGE, NO_SIZE, Operation


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


OPERATION = Operation(
    name="search-replace",
    summary="Find something by words and paint something else in its place; other pixels are kept.",
    request=SearchReplaceRequest,
    pipeline="SearchReplacePipeline",
    model_kind="base",
    diffusers_task="inpaint",
    mask_model_kind="text-segmentation",
    slots=(IMAGE,),
    # The style preset dresses what is painted in; the output keeps the input's size. (Recolor's
    # prompt is a colour and general-edit's an instruction: a preset's words would garble them.)
    templates=NO_SIZE,
    quality=True,
    examples=({
        "image_asset_id": EXAMPLE_ASSET, "search_prompt": "the cat", "prompt": "a golden retriever",
        "mask_threshold": 0.4, "grow_mask": 3, "return_mask": True, "seed": 7,
    },),
)
