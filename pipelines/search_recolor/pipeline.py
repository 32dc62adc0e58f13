"""Search-recolor: find something by words, give it a new colour or material."""

from __future__ import annotations

from ..search_edit import SearchEditPipeline


class SearchRecolorPipeline(SearchEditPipeline):
    """The shared search edit (pipelines/search_edit.py); the request says what to find
    (`search_text`) and what to paint (`inpaint_prompt`)."""

    operation = "search-recolor"
