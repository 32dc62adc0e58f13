"""The project's size rules, checked on the source itself: no module over 400 lines outside
tests, no function or method over 60 lines. Past those sizes a module or a function is
doing more than one thing; split it along its meaning, not to pass this test.

Reads and parses the files (`ast`); starts nothing, so it runs in well under a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The project's Python packages: tests/ and the virtualenv are not held to the rules.
PACKAGES = ("api", "worker", "pipelines", "storage", "client", "core", "ops", "devkit", "bench")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    missing = [name for name in PACKAGES if not (ROOT / name).is_dir()]
    assert not missing, f"packages gone or renamed, update PACKAGES: {missing}"
    return sorted(path for name in PACKAGES for path in (ROOT / name).rglob("*.py") if "__pycache__" not in path.parts)


def _where(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_no_module_is_over_400_lines():
    too_long = []
    for path in _modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{_where(path)}: {lines} lines")
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(too_long)


def test_no_function_is_over_60_lines():
    too_long = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        # ast.walk reaches methods and nested functions too; lineno is the `def` line, after
        # any decorators.
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{_where(path)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)
