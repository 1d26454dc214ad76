"""Proof regression: committed baselines of every theorem and a readable diff against them.

A baseline (``verify/baselines/<id>.json``) records, for the default parameters and the fast
budget, the closed forms of the prediction (``sympy.srepr`` and LaTeX, and their values at the
point), every obligation and whether it holds, and every numeric check with its measured value
and tolerance. :func:`compare` reports what changed:

* a closed form whose ``srepr`` differs, an obligation that appeared, disappeared or flipped;
* a numeric check that appeared, disappeared or flipped between pass and fail;
* a ``~`` check (agreement within a tolerance) whose measured value moved by more than that
  tolerance from the baseline: the measurement drifted even if it still passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sympy as sp

from theorems import Prediction
from verify.harness import Plan, Verdict
from verify.report import check_record

#: Where the committed baselines live (one JSON file per theorem id).
BASELINE_DIR = Path(__file__).resolve().parent / "baselines"


@dataclass(frozen=True)
class Difference:
    """One change against the baseline.

    Attributes
    ----------
    theorem_id : str
    what : str
        ``closed form``, ``obligation``, ``check`` or ``baseline``.
    name : str
        The closed form, obligation or check.
    old, new : str
        Before and after, readable.
    """

    theorem_id: str
    what: str
    name: str
    old: str
    new: str

    def describe(self) -> str:
        """One paragraph: what changed, old vs new."""
        return (f"{self.theorem_id}: {self.what} '{self.name}' changed\n"
                f"    baseline: {self.old}\n    now:      {self.new}")


def path_for(theorem_id: str, directory: Path | None = None) -> Path:
    """The baseline file of ``theorem_id`` (in :data:`BASELINE_DIR` unless given)."""
    return (directory or BASELINE_DIR) / f"{theorem_id}.json"


def closed_form_records(prediction: Prediction) -> dict[str, dict[str, str]]:
    """Each closed form (and spectrum) of ``prediction`` as ``srepr`` and LaTeX, symbolic and
    at the prediction's point; the baselines compare these, the docs render them."""
    records = {}
    for name, expr in prediction.closed_forms.items():
        value = prediction.value(name)
        records[name] = {"srepr": sp.srepr(sp.sympify(expr)), "latex": sp.latex(expr),
                         "value_srepr": sp.srepr(value), "value_latex": sp.latex(value)}
    for name, pairs in prediction.spectra.items():
        records[f"spectrum {name}"] = {
            "srepr": sp.srepr(sp.Tuple(*(sp.Tuple(v, m) for v, m in pairs))),
            "latex": r",\ ".join(f"{sp.latex(v)}\\ (\\times {m})" for v, m in pairs),
            "value_latex": r",\ ".join(
                f"{sp.latex(sp.sympify(v).subs(prediction.point))}\\ (\\times {m})"
                for v, m in pairs),
        }
    return records


def snapshot(plan: Plan, verdict: Verdict) -> dict[str, Any]:
    """The baseline record of one verdict (closed forms are re-derived from ``plan``)."""
    closed_forms = closed_form_records(plan.theorem.predict(plan.params))
    checks = [check_record(c) for c in verdict.checks]
    seen: dict[str, int] = {}
    for record in checks:
        record.pop("seconds")
        seen[record["name"]] = seen.get(record["name"], 0) + 1
        if seen[record["name"]] > 1:  # keep repeated names apart (rare; e.g. per-stage checks)
            record["name"] += f" [{seen[record['name']]}]"
    return {
        "theorem": plan.theorem.id,
        "params": verdict.params,
        "budget": verdict.budget,
        "seeds": list(verdict.seeds),
        "closed_forms": closed_forms,
        "obligations": {c["name"]: c["passed"] for c in checks if c["kind"] == "obligation"},
        "checks": {c["name"]: c for c in checks if c["kind"] != "obligation"},
    }


def write(record: dict[str, Any], directory: Path | None = None) -> Path:
    """Write ``record`` as the baseline of its theorem (sorted keys, stable diffs)."""
    path = path_for(record["theorem"], directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def load(theorem_id: str, directory: Path | None = None) -> dict[str, Any] | None:
    """The committed baseline of ``theorem_id``, or None when there is none."""
    path = path_for(theorem_id, directory)
    return json.loads(path.read_text()) if path.exists() else None


def _short(text: Any, limit: int = 160) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _drifted(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A ``~`` check whose measured value moved by more than its tolerance."""
    tolerance = new.get("tolerance")
    if new["relation"] != "~" or not tolerance:
        return False
    if not all(isinstance(r["measured"], int | float) for r in (old, new)):
        return False
    bound = tolerance["atol"] + tolerance["rtol"] * abs(float(new["predicted"]))
    return abs(new["measured"] - old["measured"]) > bound


def _describe_check(record: dict[str, Any]) -> str:
    tolerance = record.get("tolerance") or {}
    state = "pass" if record["passed"] else "FAIL"
    text = (f"{state}: measured {_short(record['measured'], 60)} {record['relation']} "
            f"{_short(record['predicted'], 60)}")
    if tolerance:
        text += f" (atol {tolerance['atol']:.3g}, rtol {tolerance['rtol']:.3g})"
    return text


def compare(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Difference]:
    """Everything in ``new`` that differs from the baseline ``old`` (module docstring)."""
    theorem_id = new["theorem"]
    if old is None:
        return [Difference(theorem_id, "baseline", "file", "missing",
                           f"run `verify --theorem {theorem_id} --update-baseline`")]
    differences = []

    def changed(what: str, name: str, before: Any, after: Any) -> None:
        differences.append(Difference(theorem_id, what, name, _short(before), _short(after)))

    for key in ("params", "budget", "seeds"):
        if old[key] != new[key]:
            changed("setting", key, old[key], new[key])
    for name in sorted(old["closed_forms"].keys() | new["closed_forms"].keys()):
        before, after = old["closed_forms"].get(name), new["closed_forms"].get(name)
        if before is None or after is None:
            changed("closed form", name, before and before["latex"] or "absent",
                    after and after["latex"] or "absent")
        elif before["srepr"] != after["srepr"] or before.get("value_srepr") != after.get(
                "value_srepr"):
            shown = [f"{r['latex']} = {r.get('value_latex')}" for r in (before, after)]
            if shown[0] == shown[1]:  # same LaTeX (e.g. digits LaTeX rounds away): show srepr
                shown = [f"{r['srepr']} = {r.get('value_srepr')}" for r in (before, after)]
            changed("closed form", name, *shown)
    for name in sorted(old["obligations"].keys() | new["obligations"].keys()):
        before, after = old["obligations"].get(name), new["obligations"].get(name)
        if before != after:
            changed("obligation", name, _holds(before), _holds(after))
    for name in sorted(old["checks"].keys() | new["checks"].keys()):
        before, after = old["checks"].get(name), new["checks"].get(name)
        if before is None or after is None:
            changed("check", name, "absent" if before is None else _describe_check(before),
                    "absent" if after is None else _describe_check(after))
        elif before["passed"] != after["passed"] or _drifted(before, after):
            changed("check", name, _describe_check(before), _describe_check(after))
    return differences


def _holds(value: bool | None) -> str:
    return {None: "absent", True: "holds", False: "does NOT hold"}[value]
