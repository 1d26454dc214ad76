"""The comparisons that turn a prediction and a measurement into a :class:`Check`.

Every constructor takes the check's stable ``key``, its display ``name`` and ``kind``, and the
numbers; the pass rule is the :class:`~verify.records.Relation`'s. ``per_seed`` (when given)
becomes the check's typed per-seed field, every other keyword goes to ``details``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from verify.records import Check, CheckKind, Relation, Tolerance


def _check(key: str, name: str, kind: CheckKind, predicted: float, measured: float,
           relation: Relation, tolerance: Tolerance, per_seed: Sequence[float] | None,
           details: dict[str, Any]) -> Check:
    seeds = tuple(float(v) for v in per_seed) if per_seed is not None else None
    return Check(key, name, kind, float(predicted), float(measured), relation, tolerance,
                 relation.passes(float(predicted), float(measured), tolerance),
                 per_seed=seeds, details=details)


def close(key: str, name: str, kind: CheckKind, predicted: float, measured: float,
          tolerance: Tolerance, per_seed: Sequence[float] | None = None,
          **details: Any) -> Check:
    """Passes when ``measured`` is within ``tolerance`` of ``predicted``."""
    return _check(key, name, kind, predicted, measured, Relation.CLOSE, tolerance, per_seed,
                  details)


def apart(key: str, name: str, kind: CheckKind, predicted: float, measured: float,
          tolerance: Tolerance, per_seed: Sequence[float] | None = None,
          **details: Any) -> Check:
    """Control: passes when ``measured`` is *outside* ``tolerance`` of ``predicted``."""
    return _check(key, name, kind, predicted, measured, Relation.APART, tolerance, per_seed,
                  details)


def at_most(key: str, name: str, kind: CheckKind, bound: float, measured: float, reason: str,
            per_seed: Sequence[float] | None = None, **details: Any) -> Check:
    """Passes when ``measured <= bound``; ``reason`` justifies the bound."""
    return _check(key, name, kind, bound, measured, Relation.AT_MOST, Tolerance(0.0, reason),
                  per_seed, details)


def at_least(key: str, name: str, kind: CheckKind, bound: float, measured: float, reason: str,
             per_seed: Sequence[float] | None = None, **details: Any) -> Check:
    """Passes when ``measured >= bound``; ``reason`` justifies the bound."""
    return _check(key, name, kind, bound, measured, Relation.AT_LEAST, Tolerance(0.0, reason),
                  per_seed, details)


def divergence(history: Any, key: str, name: str) -> list[Check]:
    """A failed training check naming the step where the loss of ``history`` (a
    :class:`numerics.train.History`) became NaN or infinite; nothing when it stayed finite."""
    step = history.nonfinite_step
    if step is None:
        return []
    return [Check(f"{key}-diverged", f"{name}: training diverged", "training", "finite loss",
                  f"non-finite loss at step {step}", Relation.CLOSE, None, False,
                  details={"step": step})]
