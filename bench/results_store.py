"""The raw results a run leaves (bench/results/results.json), and how a partial run (`--only`)
merges into the last ones, so that BENCHMARKS.md keeps the figures of the sections it did not
run (each section then says which run it is from)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

# The keys each section writes into the results dict.
SECTION_KEYS = {
    "bare": ("bare",),
    "overhead": ("overhead",),
    "drain": ("bare_before_drain", "drain", "bare_after"),
    "medium": ("medium",),
    "scaling": ("scaling",),
    "api": ("api",),
    "cold": ("cold",),
    "backlog": ("backlog",),
    "mixed": ("mixed",),
    "cpu": ("cpu",),
    "identical": ("identical",),
    "keys": ("keys",),
    "pools": ("pools",),
    "previews": ("previews",),
    "estimates": ("estimates",),
}


def results_path(out: Path) -> Path:
    return out.parent / "bench" / "results" / "results.json"


def load_previous(out: Path) -> dict:
    """The last results written next to `out`; {} when there are none (or they do not parse)."""
    path = results_path(out)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _stamp(results: dict) -> dict:
    return {"started": results.get("started", "?"), "quick": bool(results.get("quick"))}


def merge(previous: dict, current: dict, ran: list[str]) -> dict:
    """`previous` with the sections in `ran` replaced by `current`'s; `section_runs` says which
    run each section's figures are from. The run's own fields (started, seconds, quick) are
    `current`'s."""
    runs = dict(previous.get("section_runs") or {
        name: _stamp(previous) for name, keys in SECTION_KEYS.items() if any(key in previous for key in keys)
    })
    merged = {key: value for key, value in previous.items() if key != "gpu"}
    for name in ran:
        for key in SECTION_KEYS[name]:
            merged.pop(key, None)
            if key in current:
                merged[key] = current[key]
        runs[name] = _stamp(current)
    merged.update({key: value for key, value in current.items() if not any(key in keys for keys in SECTION_KEYS.values())})
    merged["section_runs"] = runs
    return merged


def earlier_sections(results: dict) -> dict[str, list[str]]:
    """Sections whose figures come from another run than this one: {"<started>, <sizes>": [names]}."""
    this = _stamp(results)
    earlier: dict[str, list[str]] = {}
    for name, stamp in (results.get("section_runs") or {}).items():
        if stamp != this:
            earlier.setdefault(f"{stamp['started']}, {'quick' if stamp['quick'] else 'full'} sizes", []).append(name)
    return earlier


def code_state(root: Path) -> dict:
    """The commit the run measured and the tracked files changed on top of it (the tree is shared:
    a run may measure someone's uncommitted work); {} outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    changed = sorted(line[3:] for line in status.splitlines() if line[3:] and not line[3:].startswith(("bench/", "BENCHMARKS.md", "docs/", "tests/")))
    return {"commit": commit, "changed": changed}


def code_text(code: dict) -> str:
    """`commit 2d474bf` with what was changed on top of it, for the report's intro."""
    if not code:
        return ""
    changed = code.get("changed") or []
    if not changed:
        return f"commit {code['commit']}"
    shown = ", ".join(f"`{path}`" for path in changed[:12]) + (f" and {len(changed) - 12} more" if len(changed) > 12 else "")
    return f"commit {code['commit']} with uncommitted changes to {shown}"
