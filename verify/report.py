"""Reports: the rich verdict table, the JSON report, and the loss-curve figures."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from verify.harness import Verdict
from verify.tolerance import Check

_PACKAGES = ("transformer-theorems", "torch", "sympy", "numpy", "scipy", "rich", "matplotlib")


def _number(value: float | str) -> str:
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:57] + "..."
    return f"{value:.6g}"


def _relation(check: Check) -> str:
    return {"~": "≈", "<=": "≤", ">=": "≥", "!~": "≠", "holds": ""}.get(check.relation, "")


def render(verdict: Verdict, console: Console) -> None:
    """Print one theorem's checks as a table, then its verdict line."""
    table = Table(title=f"{verdict.theorem_id}  ({_params_text(verdict.params)}, "
                  f"budget {verdict.budget}, seeds {len(verdict.seeds)})", title_justify="left")
    for column in ("kind", "check", "predicted", "measured", "tolerance", "pass"):
        table.add_column(column, overflow="fold")
    for check in verdict.checks:
        tolerance = ""
        if check.relation == "holds":
            tolerance = check.details.get("method", "")
        elif check.tolerance is not None and check.relation in ("~", "!~"):
            tolerance = check.tolerance.describe()
        measured = _number(check.measured)
        if "seeds_passing" in check.details:  # worst seed, then how many seeds pass
            measured += (f" (worst; {check.details['seeds_passing']} seeds pass, spread "
                         f"{check.details['spread']:.3g})")
        table.add_row(
            check.kind,
            Text(check.name),
            Text(f"{_relation(check)} {_number(check.predicted)}".strip()),
            Text(measured),
            Text(tolerance),
            "[green]pass[/green]" if check.passed else "[red]FAIL[/red]",
        )
    console.print(table)
    failed = [c for c in verdict.checks if not c.passed]
    status = "[green]PASS[/green]" if verdict.passed else f"[red]FAIL[/red] ({len(failed)} failed)"
    console.print(f"{verdict.theorem_id}: {status} in {verdict.seconds:.1f} s\n")


def _params_text(params: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
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
            "packages": versions, "git_revision": _git_revision()}


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
    """A check as JSON: the comparison, its tolerance and reason, and the details."""
    tolerance = None
    if check.tolerance is not None:
        tolerance = {"atol": check.tolerance.atol, "rtol": check.tolerance.rtol,
                     "reason": check.tolerance.reason}
    return {
        "name": check.name, "kind": check.kind, "relation": check.relation,
        "predicted": _jsonable(check.predicted), "measured": _jsonable(check.measured),
        "tolerance": tolerance, "passed": check.passed, "seconds": round(check.seconds, 4),
        "details": _jsonable(check.details),
    }


def report(verdicts: list[Verdict], settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: settings (command, budget, device, seeds), environment, verdicts."""
    return {
        "tool": "transformer-theorems",
        "passed": bool(verdicts) and all(v.passed for v in verdicts),
        "settings": _jsonable(settings),
        "environment": environment(),
        "theorems": [
            {"id": v.theorem_id, "params": v.params, "budget": v.budget, "seeds": list(v.seeds),
             "passed": v.passed, "seconds": round(v.seconds, 3),
             "checks": [check_record(c) for c in v.checks]}
            for v in verdicts
        ],
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write the report (pretty-printed)."""
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_figures(verdict: Verdict, directory: Path) -> list[Path]:
    """One PNG per curve title: loss vs step with the prediction's reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    titles = list(dict.fromkeys(curve.title for curve in verdict.curves))
    for index, title in enumerate(titles):
        curves = [c for c in verdict.curves if c.title == title]
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for curve in curves:
            ax.plot(range(1, len(curve.values) + 1), curve.values, lw=1.2, label=curve.label)
        styles = iter(["--", ":", "-."])
        for name, value in curves[0].references.items():
            ax.axhline(value, color="black", ls=next(styles), lw=0.9, label=f"{name} {value:.5f}")
        ax.set_xscale(curves[0].xscale)
        ax.set_yscale(curves[0].yscale)
        ax.set_xlabel("step")
        ax.set_ylabel(curves[0].ylabel)
        ax.set_title(f"{verdict.theorem_id}\n{title}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = directory / f"{verdict.theorem_id}-{index}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
