"""Reports: the verdict table in the terminal and the JSON report (schema
:data:`SCHEMA_VERSION`)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console

from verify.files import write_atomic
from verify.records import SCHEMA_VERSION, Check, Verdict

_PACKAGES = ("transformer-theorems", "torch", "sympy", "numpy", "scipy", "rich", "matplotlib")


def render(verdict: Verdict, console: Console) -> None:
    """Print one theorem's checks as a table, then its verdict line."""
    console.print(verdict.table())
    for note in verdict.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    line = verdict.summary()
    console.print(line.replace("PASS", "[green]PASS[/green]").replace("FAIL", "[red]FAIL[/red]")
                  + "\n")


#: The checkout this package runs from (when it is one).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def git_revision(root: Path = PACKAGE_ROOT) -> str | None:
    """The git revision of the checkout holding ``root`` (``+dirty`` with uncommitted changes),
    or None outside a git checkout (an installed wheel)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                               text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Versions, platform and git revision, so that a run can be reproduced."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": versions, "git_revision": git_revision()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy/torch scalars
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def check_record(check: Check) -> dict[str, Any]:
    """A check as JSON: the comparison, its tolerance and reason, per-seed values, details."""
    tolerance = None
    if check.tolerance is not None:
        tolerance = {"atol": check.tolerance.atol, "rtol": check.tolerance.rtol,
                     "reason": check.tolerance.reason}
    return {
        "key": check.key, "name": check.name, "kind": check.kind,
        "relation": check.relation.value,
        "predicted": _jsonable(check.predicted), "measured": _jsonable(check.measured),
        "tolerance": tolerance, "passed": check.passed, "seconds": round(check.seconds, 4),
        "per_seed": _jsonable(check.per_seed), "details": _jsonable(check.details),
        "uses": list(check.uses),
    }


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    """One theorem's part of the report: settings, the prediction and every check."""
    return {"id": verdict.theorem_id, "params": verdict.params, "budget": verdict.budget,
            "seeds": list(verdict.seeds), "passed": verdict.passed,
            "seconds": round(verdict.seconds, 3),
            "prediction": _jsonable(verdict.prediction),
            "notes": list(verdict.notes),
            "checks": [check_record(c) for c in verdict.checks]}


def report(verdicts: list[Verdict], settings: dict[str, Any],
           complete: bool = True) -> dict[str, Any]:
    """The JSON report: settings (command, budget, device, seeds), environment, verdicts.

    ``complete`` is False for the report of an interrupted run (it holds the theorems that
    finished).
    """
    return {
        "tool": "transformer-theorems",
        "schema_version": SCHEMA_VERSION,
        "complete": complete,
        "passed": complete and bool(verdicts) and all(v.passed for v in verdicts),
        "settings": _jsonable(settings),
        "environment": environment(),
        "theorems": [verdict_record(v) for v in verdicts],
    }


def json_text(data: dict[str, Any]) -> str:
    """The report as the text written to a file (pretty-printed)."""
    return json.dumps(data, indent=2) + "\n"


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` pretty-printed, atomically (a temporary file beside it, then a rename), so
    that an interrupted or failed write never leaves a truncated file.

    Raises
    ------
    OSError
        When the file cannot be written (disk full, permission); ``path`` is then unchanged.
    """
    text = json_text(data)
    if not path.exists() or path.is_file():
        write_atomic(path, text)
        return
    with path.open("w") as handle:  # a device or pipe (e.g. /dev/stdout): write in place
        handle.write(text)
