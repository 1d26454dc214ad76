"""Tolerances with their reasons, and the comparisons that turn numbers into checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

CheckKind = Literal["obligation", "bridge", "training", "control"]


@dataclass(frozen=True)
class Tolerance:
    """An explicit tolerance: ``|measured - predicted| <= atol + rtol |predicted|``.

    Attributes
    ----------
    atol : float
        Absolute part.
    reason : str
        Why this size (round-off, sampling error, optimisation error), shown in the report.
    rtol : float
        Relative part.
    """

    atol: float
    reason: str
    rtol: float = 0.0

    def bound(self, predicted: float) -> float:
        """The largest allowed ``|measured - predicted|``."""
        return self.atol + self.rtol * abs(predicted)

    def allows(self, predicted: float, measured: float) -> bool:
        """Whether ``measured`` agrees with ``predicted`` (False for NaN)."""
        return bool(abs(measured - predicted) <= self.bound(predicted))

    def describe(self) -> str:
        """Short form for tables, e.g. ``1e-10``."""
        text = f"{self.atol:.1g}"
        return text + (f" + {self.rtol:.1g}|x|" if self.rtol else "")


@dataclass(frozen=True)
class Check:
    """One comparison between a prediction and a measurement.

    Attributes
    ----------
    name : str
        What is compared.
    kind : {"obligation", "bridge", "training", "control"}
        Obligation: exact sympy proof step. Bridge: the torch model at the theorem's point
        against the sympy values. Training: where real training ends. Control: the same
        training outside the assumptions, where the prediction must fail.
    predicted : float or str
        The theorem's value (or the claim in words).
    measured : float or str
        What the numeric side gave.
    relation : {"~", "<=", ">=", "!~", "holds"}
        ``~``: within tolerance; ``<=``/``>=``: one-sided bound; ``!~``: must *disagree*
        beyond the tolerance (controls); ``holds``: exact obligation.
    tolerance : Tolerance or None
        None for exact obligations and for bounds that carry their reason in ``details``.
    passed : bool
        The verdict of this check.
    seconds : float
        Wall time spent on it.
    details : dict
        Numbers for the JSON report (per-seed values, plateau steps, standard errors, ...).
    """

    name: str
    kind: CheckKind
    predicted: float | str
    measured: float | str
    relation: str
    tolerance: Tolerance | None
    passed: bool
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def satisfies(relation: str, predicted: float, measured: float, tolerance: Tolerance) -> bool:
    """Whether ``measured`` passes ``relation`` against ``predicted`` (False for NaN).

    ``~``: within ``tolerance``; ``!~``: outside it; ``<=``/``>=``: one-sided bound.
    """
    if relation == "~":
        return tolerance.allows(predicted, measured)
    if relation == "!~":
        return bool(abs(measured - predicted) > tolerance.bound(predicted))
    if relation == "<=":
        return bool(measured <= predicted)
    if relation == ">=":
        return bool(measured >= predicted)
    raise ValueError(f"no numeric rule for relation {relation!r}")


def _check(name: str, kind: CheckKind, predicted: float, measured: float, relation: str,
           tolerance: Tolerance, details: dict[str, Any]) -> Check:
    return Check(name, kind, predicted, measured, relation, tolerance,
                 satisfies(relation, predicted, measured, tolerance), details=details)


def close(
    name: str, kind: CheckKind, predicted: float, measured: float, tolerance: Tolerance,
    **details: Any,
) -> Check:
    """Passes when ``measured`` is within ``tolerance`` of ``predicted``."""
    return _check(name, kind, predicted, measured, "~", tolerance, details)


def apart(
    name: str, kind: CheckKind, predicted: float, measured: float, tolerance: Tolerance,
    **details: Any,
) -> Check:
    """Control: passes when ``measured`` is *outside* ``tolerance`` of ``predicted``."""
    return _check(name, kind, predicted, measured, "!~", tolerance, details)


def at_most(
    name: str, kind: CheckKind, bound: float, measured: float, reason: str, **details: Any
) -> Check:
    """Passes when ``measured <= bound``; ``reason`` justifies the bound."""
    return _check(name, kind, bound, measured, "<=", Tolerance(0.0, reason), details)


def at_least(
    name: str, kind: CheckKind, bound: float, measured: float, reason: str, **details: Any
) -> Check:
    """Passes when ``measured >= bound``; ``reason`` justifies the bound."""
    return _check(name, kind, bound, measured, ">=", Tolerance(0.0, reason), details)
