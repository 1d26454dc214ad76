"""The comparisons that turn a prediction and a measurement into a :class:`Check`.

Every constructor takes the check's stable ``key``, its display ``name`` and ``kind``, and the
numbers; the pass rule is the :class:`~verify.records.Relation`'s. ``per_seed`` (when given)
becomes the check's typed per-seed field, ``uses`` names the closed forms of the prediction the
check compares with, every other keyword goes to ``details``. A control (kind ``control``) also
records its margin: how far the measurement lies beyond what the theorem would predict there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from verify.records import Check, CheckKind, Relation, Tolerance


def margin(relation: Relation, predicted: float, measured: float, tolerance: Tolerance) -> float:
    """How far ``measured`` lies on the passing side of the rule, in units of the tolerance
    (two-sided relations) or of ``max(|bound|, tiny)`` (one-sided bounds); negative when the
    check fails. A control's margin says by how much the prediction misses outside the
    theorem's assumptions."""
    if not (math.isfinite(predicted) and math.isfinite(measured)):
        return math.nan
    if relation.uses_tolerance_size:
        scale = tolerance.bound(predicted) or math.ulp(max(abs(predicted), 1.0))
        distance = abs(measured - predicted) / scale
        return distance - 1 if relation is Relation.APART else 1 - distance
    scale = max(abs(predicted), math.ulp(1.0))
    return ((predicted - measured) if relation is Relation.AT_MOST
            else (measured - predicted)) / scale


def _check(key: str, name: str, kind: CheckKind, predicted: float, measured: float,
           relation: Relation, tolerance: Tolerance, per_seed: Sequence[float] | None,
           uses: Sequence[str], details: dict[str, Any]) -> Check:
    seeds = tuple(float(v) for v in per_seed) if per_seed is not None else None
    predicted, measured = float(predicted), float(measured)
    if kind == "control":
        details = {**details, "margin": margin(relation, predicted, measured, tolerance)}
    return Check(key, name, kind, predicted, measured, relation, tolerance,
                 relation.passes(predicted, measured, tolerance),
                 per_seed=seeds, details=details, uses=tuple(uses))


def close(key: str, name: str, kind: CheckKind, predicted: float, measured: float,
          tolerance: Tolerance, per_seed: Sequence[float] | None = None,
          uses: Sequence[str] = (), **details: Any) -> Check:
    """Passes when ``measured`` is within ``tolerance`` of ``predicted``."""
    return _check(key, name, kind, predicted, measured, Relation.CLOSE, tolerance, per_seed,
                  uses, details)


def apart(key: str, name: str, kind: CheckKind, predicted: float, measured: float,
          tolerance: Tolerance, per_seed: Sequence[float] | None = None,
          uses: Sequence[str] = (), **details: Any) -> Check:
    """Control: passes when ``measured`` is *outside* ``tolerance`` of ``predicted``."""
    return _check(key, name, kind, predicted, measured, Relation.APART, tolerance, per_seed,
                  uses, details)


def at_most(key: str, name: str, kind: CheckKind, bound: float, measured: float, reason: str,
            per_seed: Sequence[float] | None = None, uses: Sequence[str] = (),
            **details: Any) -> Check:
    """Passes when ``measured <= bound``; ``reason`` justifies the bound."""
    return _check(key, name, kind, bound, measured, Relation.AT_MOST, Tolerance(0.0, reason),
                  per_seed, uses, details)


def at_least(key: str, name: str, kind: CheckKind, bound: float, measured: float, reason: str,
             per_seed: Sequence[float] | None = None, uses: Sequence[str] = (),
             **details: Any) -> Check:
    """Passes when ``measured >= bound``; ``reason`` justifies the bound."""
    return _check(key, name, kind, bound, measured, Relation.AT_LEAST, Tolerance(0.0, reason),
                  per_seed, uses, details)


def divergence(history: Any, key: str, name: str) -> list[Check]:
    """A failed training check naming the step where the loss of ``history`` (a
    :class:`numerics.train.History`) became NaN or infinite; nothing when it stayed finite."""
    step = history.nonfinite_step
    if step is None:
        return []
    return [Check(f"{key}-diverged", f"{name}: training diverged", "training", "finite loss",
                  f"non-finite loss at step {step}", Relation.CLOSE, None, False,
                  details={"step": step})]
