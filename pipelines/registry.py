"""Every operation renderq runs, found from its folder: `pipelines/<operation>/request.py`
declares `OPERATION` (pipelines/operation.py). Adding a folder adds the operation; nothing
else lists them (livepeer ai-runner style: operation ↔ folder ↔ URL).

Importing this module imports only the request modules (pydantic), so the API can use it to
validate requests with torch unimported; `pipeline_class` imports an operation's pipeline
module, which the worker alone calls.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

from .operation import Operation

if TYPE_CHECKING:  # the pipeline contract imports PIL; the API needs only the declarations
    from .base import Pipeline


def _discover() -> dict[str, Operation]:
    found = {}
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.ispkg:
            operation = importlib.import_module(f"{__package__}.{module.name}.request").OPERATION
            assert operation.module == module.name, f"{module.name}/request.py declares {operation.name}"
            found[operation.name] = operation
    # text-to-image first, the others by name: the order listings and messages show.
    return dict(sorted(found.items(), key=lambda item: (item[0] != "text-to-image", item[0])))


OPERATIONS: dict[str, Operation] = _discover()


def pipeline_class(operation: Operation) -> "type[Pipeline]":
    """The pipeline class of `operation` (imports its model code)."""
    module = importlib.import_module(f"{__package__}.{operation.module}.pipeline")
    return getattr(module, operation.pipeline)
