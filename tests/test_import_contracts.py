"""Who may import whom: the import-linter contracts of pyproject.toml ([tool.importlinter]),
and the API process free of the model stack.

Fast tier: import-linter through its Python API (no `lint-imports` process), and a grimp
graph of what `api.app` reaches, lazy imports inside functions included. Integration: the
same claim in a fresh interpreter, where `sys.modules` tells the truth about third-party
packages too (what they import is outside the graph).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application import use_cases

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
ROOTS = ("api", "worker", "pipelines", "storage", "client", "core", "ops", "devkit", "bench")
# What the API process must never load: the model stack and its array libraries.
HEAVY = ("torch", "diffusers", "transformers", "cv2", "numpy")


def test_the_import_contracts_are_kept(capsys, monkeypatch):
    """`lint-imports`, in process: every contract of pyproject.toml kept; the report (which
    contract, which chain of imports, at which lines) is the failure message."""
    monkeypatch.syspath_prepend(str(ROOT))  # bench/ is not installed: found from the checkout
    configuration.configure()
    # cache_dir=None: nothing written into the checkout. (importlinter.cli.lint_imports would
    # reconfigure logging for the whole test process, so its use case is called directly.)
    kept = use_cases.lint_imports(config_filename=str(PYPROJECT), cache_dir=None, no_logo=True)
    report = capsys.readouterr().out
    assert kept, f"import contracts broken (pyproject.toml [tool.importlinter]):\n{report}"
    assert "BROKEN" not in report and "0 broken" in report, report


def api_graph() -> grimp.ImportGraph:
    graph = grimp.build_graph(*ROOTS, include_external_packages=True, exclude_type_checking_imports=True, cache_dir=None)
    # pipelines/registry.py imports every pipelines/<operation>/request.py by name
    # (importlib), which grimp cannot see: drawn in, so what those modules import counts too.
    for module in graph.find_children("pipelines"):
        if f"{module}.request" in graph.modules:
            graph.add_import(importer="pipelines.registry", imported=f"{module}.request")
    return graph


def test_nothing_api_app_reaches_imports_the_model_stack(monkeypatch):
    """Every module `import api.app` (and building the app) can import, at module level or
    inside a function, imports none of HEAVY."""
    monkeypatch.syspath_prepend(str(ROOT))
    graph = api_graph()
    reached = graph.find_upstream_modules("api.app")
    chains = {
        heavy: " -> ".join(graph.find_shortest_chain(importer="api.app", imported=heavy) or ())
        for heavy in HEAVY
        if heavy in reached
    }
    assert not chains, "api.app reaches the model stack:\n" + "\n".join(chains.values())


FRESH_INTERPRETER = f"""
import sys
import api.app

app = api.app.create_app()
assert app.openapi()["paths"]
print(",".join(name for name in {HEAVY!r} if name in sys.modules))
"""


@pytest.mark.integration
def test_a_fresh_api_process_loads_no_model_stack(tmp_path):
    """`import api.app`, create_app() and its OpenAPI schema, in a new interpreter: none of
    HEAVY in sys.modules, third-party imports included."""
    done = subprocess.run(
        [sys.executable, "-c", FRESH_INTERPRETER], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # no RENDERQ_* of this shell: the defaults
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert loaded == "", f"the API process loaded {loaded}"
