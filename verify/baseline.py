"""Proof regression: committed baselines of every theorem and a readable diff against them.

A baseline (``<id>.json`` in the baseline directory its paper registers; ``verify/baselines/``
for the built-in papers) records, for the default parameters and the fast budget, the closed
forms of the prediction (``sympy.srepr`` and LaTeX, and their values at the point), every
obligation (in proof order, its claim, whether it holds and how it was decided), every numeric
check with its measured value and tolerance, and the git revision and wall time of the run
that recorded it (shown in the docs, not compared). :func:`compare` reports what changed:

* a closed form whose ``srepr`` differs, an obligation that appeared, disappeared or flipped;
* a numeric check that appeared, disappeared or flipped between pass and fail;
* a check whose measured value drifted by more than its relation allows
  (:meth:`verify.records.Relation.drifted`: a ``~`` check that moved by more than its
  tolerance, even if it still passes);
* a check whose tolerance changed size (by more than :data:`TOLERANCE_RTOL`, relatively).

Obligations and checks are keyed by their stable keys, so a reworded label is not a change.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verify.files import write_atomic
from verify.records import SCHEMA_VERSION, Relation, Tolerance, Verdict
from verify.report import check_record


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


def path_for(theorem_id: str, directory: Path) -> Path:
    """The baseline file of ``theorem_id`` in ``directory`` (its paper's baseline directory)."""
    return directory / f"{theorem_id}.json"


def snapshot(verdict: Verdict, revision: str | None = None) -> dict[str, Any]:
    """The baseline record of one verdict: closed forms, obligations (in proof order, with
    their claim) and checks by key, and where it was recorded: ``revision`` (the git revision
    of the code that measured it, ``+dirty`` when the tree had uncommitted changes, which the
    baseline's own commit then holds) and the run's wall seconds. Neither is compared."""
    closed_forms = {name: {k: v for k, v in record.items() if k in _CLOSED_FORM_FIELDS}
                    for name, record in verdict.prediction.items()}
    obligations: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, Any]] = {}
    for check in verdict.checks:
        record = check_record(check)
        record.pop("seconds")
        table = obligations if check.kind == "obligation" else checks
        key, count = check.key, 1
        while key in table:  # keep repeated keys apart (rare; e.g. one stage used twice)
            count += 1
            key = f"{check.key} [{count}]"
        if check.kind == "obligation":
            table[key] = {"name": check.name, "holds": check.passed,
                          "method": check.details.get("method", ""), "order": len(table),
                          "claim": str(check.predicted)}
        else:
            table[key] = record
    return {
        "schema_version": SCHEMA_VERSION,
        "theorem": verdict.theorem_id,
        "params": verdict.params,
        "budget": verdict.budget,
        "seeds": list(verdict.seeds),
        "recorded": {"revision": revision, "seconds": round(verdict.seconds, 1)},
        "closed_forms": closed_forms,
        "obligations": obligations,
        "checks": checks,
    }


#: What a baseline keeps of each closed form (exact forms; floats are derived from them).
_CLOSED_FORM_FIELDS = ("srepr", "latex", "value_srepr", "value_latex")


def write(record: dict[str, Any], directory: Path) -> Path:
    """Write ``record`` as the baseline of its theorem (sorted keys, stable diffs, atomic)."""
    path = path_for(record["theorem"], directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


class BaselineError(ValueError):
    """A baseline file that cannot be read or does not hold a baseline (truncated, not JSON,
    a value of the wrong type): its path and the problem, in one line."""


def load(theorem_id: str, directory: Path) -> dict[str, Any] | None:
    """The committed baseline of ``theorem_id``, or None when there is none.

    Raises
    ------
    BaselineError
        When the file cannot be read, is not JSON, or is not a baseline of the current schema
        (:func:`malformed`). A baseline of another schema version is returned as it is:
        :func:`compare` reports it.
    """
    path = path_for(theorem_id, directory)
    try:
        if not path.exists():
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot read it ({exc.strerror or exc})"
                            ) from None
    except ValueError as exc:  # invalid JSON, or bytes that are not UTF-8
        raise BaselineError(f"baseline {path}: not valid JSON ({_short(exc, 80)})") from None
    problem = malformed(record)
    if problem is not None:
        raise BaselineError(f"baseline {path}: malformed ({problem})")
    return record


def malformed(record: Any) -> str | None:
    """What makes ``record`` unusable as a baseline, or None: :func:`compare` reads every part
    it checks here, and a value of the wrong type (a measured value that is not a number) must
    not pass as a match."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, expected an object"
    if record.get("schema_version", 1) != SCHEMA_VERSION:
        return None  # compare() reports the schema version
    return (_missing(record, _RECORD_FIELDS, "")
            or _parts(record["closed_forms"], _CLOSED_FORM_TYPES, "closed form")
            or _parts(record["obligations"], _OBLIGATION_TYPES, "obligation")
            or _parts(record["checks"], _CHECK_TYPES, "check")
            or next(filter(None, (_check_values(key, check)
                                  for key, check in record["checks"].items())), None))


def _missing(record: dict[str, Any], fields: dict[str, type | tuple[type, ...]],
             where: str) -> str | None:
    """The first field of ``fields`` that ``record`` lacks or holds with the wrong type."""
    for name, kind in fields.items():
        if name not in record:
            return f"{where}no {name!r}"
        value = record[name]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            # (true is not a number)
            return f"{where}{name!r} has the wrong type ({type(value).__name__})"
    return None


def _parts(table: dict[str, Any], fields: dict[str, type | tuple[type, ...]],
           what: str) -> str | None:
    for key, part in table.items():
        if not isinstance(part, dict):
            return f"{what} {_short(key, 60)!r} is not an object"
        problem = _missing(part, fields, f"{what} {_short(key, 60)!r}: ")
        if problem is not None:
            return problem
    return None


def _check_values(key: str, check: dict[str, Any]) -> str | None:
    """A check's relation must be known, and a check with a tolerance compares numbers."""
    where = f"check {_short(key, 60)!r}: "
    if check["relation"] not in {relation.value for relation in Relation}:
        return f"{where}unknown relation {_short(check['relation'], 20)!r}"
    tolerance = check["tolerance"]
    if tolerance is None:
        return None
    return (_missing(tolerance, {"atol": _NUMBER, "rtol": _NUMBER, "reason": str},
                     f"{where}tolerance ")
            or _missing(check, {"measured": _NUMBER, "predicted": _NUMBER}, where))


_NUMBER = (int, float)
_RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "params": dict, "budget": str, "seeds": list, "closed_forms": dict, "obligations": dict,
    "checks": dict}
_CLOSED_FORM_TYPES: dict[str, type | tuple[type, ...]] = {"srepr": str, "latex": str}
_OBLIGATION_TYPES: dict[str, type | tuple[type, ...]] = {"holds": bool, "method": str}
_CHECK_TYPES: dict[str, type | tuple[type, ...]] = {
    "kind": str, "relation": str, "passed": bool, "tolerance": (dict, type(None)),
    "measured": (int, float, str), "predicted": (int, float, str)}


def _short(text: Any, limit: int = 160) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _drifted(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the measured value moved by more than the relation's drift rule allows."""
    tolerance = new.get("tolerance")
    if not tolerance or not all(isinstance(r["measured"], int | float) for r in (old, new)):
        return False
    if not isinstance(new["predicted"], int | float):
        return False
    return Relation(new["relation"]).drifted(
        float(old["measured"]), float(new["measured"]), float(new["predicted"]),
        Tolerance(tolerance["atol"], tolerance["reason"], tolerance["rtol"]))


def _tolerance_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A tolerance whose size changed (loosening one must be a visible, reviewed change)."""
    before, after = old.get("tolerance") or {}, new.get("tolerance") or {}
    if bool(before) != bool(after):
        return True
    return any(not math.isclose(before.get(part, 0.0), after.get(part, 0.0),
                                rel_tol=TOLERANCE_RTOL, abs_tol=0.0) for part in ("atol", "rtol"))


def _claim_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The check's kind, relation or predicted value changed (a ``~`` check turned into a
    one-sided bound, a threshold moved): the claim is no longer the recorded one."""
    if old["kind"] != new["kind"] or old["relation"] != new["relation"]:
        return True
    before, after = old["predicted"], new["predicted"]
    if isinstance(before, int | float) and isinstance(after, int | float):
        return not math.isclose(before, after, rel_tol=TOLERANCE_RTOL, abs_tol=1e-12)
    return before != after


#: Relative change of a tolerance's size that counts as a change: data-derived tolerances
#: (standard errors) move by round-off between machines, a loosened one by far more.
TOLERANCE_RTOL = 1e-3


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
    if old.get("schema_version") != SCHEMA_VERSION:
        return [Difference(theorem_id, "baseline", "schema version",
                           str(old.get("schema_version", 1)),
                           f"{SCHEMA_VERSION}: run `verify --theorem {theorem_id} "
                           "--update-baseline` and review the diff")]
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
    for key in sorted(old["obligations"].keys() | new["obligations"].keys()):
        before, after = old["obligations"].get(key), new["obligations"].get(key)
        if any((before or {}).get(part) != (after or {}).get(part) for part in
               ("holds", "method")):  # a proof that degrades to a point check is a change
            changed("obligation", key, _holds(before), _holds(after))
    for key in sorted(old["checks"].keys() | new["checks"].keys()):
        before, after = old["checks"].get(key), new["checks"].get(key)
        if before is None or after is None:
            changed("check", key, "absent" if before is None else _describe_check(before),
                    "absent" if after is None else _describe_check(after))
        elif (before["passed"] != after["passed"] or _drifted(before, after)
              or _tolerance_changed(before, after) or _claim_changed(before, after)):
            changed("check", key, _describe_check(before), _describe_check(after))
    return differences


def _holds(record: dict[str, Any] | None) -> str:
    if record is None:
        return "absent"
    return ("holds" if record["holds"] else "does NOT hold") + f" ({record.get('method', '')})"
