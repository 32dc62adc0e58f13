"""Search-replace: find something by words, paint something else in its place."""

from __future__ import annotations

from ..search_edit import SearchEditPipeline


class SearchReplacePipeline(SearchEditPipeline):
    """The shared search edit (pipelines/search_edit.py); the request says what to find
    (`search_text`) and what to paint (`inpaint_prompt`)."""

    operation = "search-replace"
