"""The harness: resolve a theorem's parameters, check its obligations, run its experiment.

``prepare`` validates everything a user can get wrong (id, parameters, assumptions) before any
work starts; ``run`` then produces a :class:`Verdict`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import sympy as sp

import theorems
from theorems import Obligation, Prediction, Theorem, TheoremError
from verify.tolerance import Check, satisfies

Budget = Literal["fast", "full"]
#: ``progress_factory(label, total)`` returns ``advance(done, total, last_loss)``.
ProgressFactory = Callable[[str, int], Callable[[int, int, float], None]]


class AssumptionError(TheoremError):
    """Parameters outside a theorem's assumptions."""


@dataclass(frozen=True)
class Curve:
    """A training curve for the figures.

    Attributes
    ----------
    title : str
        Figure title (one figure per title).
    label : str
        Legend entry (e.g. ``tied, seed 0``).
    values : numpy.ndarray
        ``(steps,)`` loss per step.
    references : dict[str, float]
        Horizontal lines (e.g. ``entropy rate``, ``H(pi)``) from the prediction.
    ylabel : str
        What ``values`` are.
    xscale, yscale : {"log", "linear"}
        Axis scales (``1 - corr`` vs step is read on log-log axes, a linear rate on a log y).
    """

    title: str
    label: str
    values: np.ndarray
    references: dict[str, float]
    ylabel: str = "loss (nats; sampled budgets: smoothed batch loss)"
    xscale: str = "log"
    yscale: str = "linear"


@dataclass(frozen=True)
class Plan:
    """A validated request: theorem, admissible parameters, budget and seeds."""

    theorem: Theorem
    params: dict[str, theorems.core.ParamValue]
    budget: Budget
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Context:
    """What an experiment needs to run (passed to every stage)."""

    plan: Plan
    prediction: Prediction
    device: object  # torch.device; typed loosely so this module does not import torch
    progress: ProgressFactory | None = None


@dataclass(frozen=True)
class Verdict:
    """All checks of one theorem.

    Attributes
    ----------
    theorem_id : str
    params : dict[str, str]
        Exact parameter values as strings (``7/10``), enough to reproduce the run.
    budget : str
    seeds : tuple[int, ...]
    checks : tuple[Check, ...]
    curves : tuple[Curve, ...]
    seconds : float
    """

    theorem_id: str
    params: dict[str, str]
    budget: str
    seeds: tuple[int, ...]
    checks: tuple[Check, ...]
    curves: tuple[Curve, ...] = field(default=())
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True when there is at least one check and every check passed."""
        return bool(self.checks) and all(check.passed for check in self.checks)


def prepare(
    theorem_id: str,
    overrides: Mapping[str, str],
    budget: Budget = "fast",
    seeds: int | None = None,
) -> Plan:
    """Validate a request.

    Raises
    ------
    theorems.TheoremError
        Unknown id (with suggestions), unknown or malformed parameter, or a violated
        assumption (:class:`AssumptionError`, naming the assumption).
    """
    from verify.experiments import experiment_for

    theorem = theorems.get(theorem_id)
    experiment = experiment_for(theorem_id)
    defaults = {k: v for k, v in experiment.budget_defaults(budget).items() if k not in overrides}
    params = theorem.resolve_params({**defaults, **overrides})
    violations = theorem.assumptions(params)
    if violations:
        raise AssumptionError(f"{theorem_id}: " + "; ".join(violations))
    if seeds is not None and seeds < 1:
        raise TheoremError(f"--seeds must be at least 1 (got {seeds})")
    count = seeds if seeds is not None else experiment.default_seeds(budget)
    return Plan(theorem, params, budget, tuple(range(count)))


def obligation_check(obligation: Obligation) -> Check:
    """Check one obligation exactly and record it."""
    start = time.perf_counter()
    result = obligation.check()
    if obligation.relation == "spectrum":
        claim = "spectrum " + ", ".join(f"{v} (x{m})" for v, m in obligation.rhs)
    elif obligation.relation in ("psd", "nsd", "indefinite"):
        claim = obligation.relation
    elif isinstance(obligation.rhs, sp.MatrixBase) and not any(obligation.rhs):
        claim = f"{obligation.relation} 0 ({obligation.rhs.shape[0]}x{obligation.rhs.shape[1]})"
    else:
        claim = f"{obligation.relation} {obligation.rhs}"
    return Check(
        name=obligation.name,
        kind="obligation",
        predicted=claim,
        measured=result.value,
        relation="holds",
        tolerance=None,
        passed=result.holds,
        seconds=time.perf_counter() - start,
        details={"method": result.method},
    )


def seed_summary(check: Check) -> Check:
    """Add the fraction of seeds that pass and the spread to a multi-seed check.

    A check over several seeds compares the worst seed; its ``per_seed`` values (in
    ``details``) are judged one by one with the same relation and tolerance.
    """
    values = check.details.get("per_seed")
    if (not isinstance(values, list) or len(values) < 2 or isinstance(check.predicted, str)
            or check.relation not in ("~", "!~", "<=", ">=") or check.tolerance is None
            or not all(isinstance(v, int | float) for v in values)):
        return check
    passing = sum(satisfies(check.relation, check.predicted, v, check.tolerance)
                  for v in values)
    return dataclasses.replace(check, details={
        **check.details, "seeds_passing": f"{passing}/{len(values)}",
        "fraction_passing": passing / len(values),
        "spread": float(max(values) - min(values))})


def run(plan: Plan, device: object, progress: ProgressFactory | None = None) -> Verdict:
    """Obligations, then the experiment's bridge, training and control stages."""
    from verify.experiments import experiment_for

    start = time.perf_counter()
    prediction = plan.theorem.predict(plan.params)
    checks = [obligation_check(ob) for ob in plan.theorem.obligations(plan.params)]
    curves: list[Curve] = []
    context = Context(plan, prediction, device, progress)
    for stage in experiment_for(plan.theorem.id).stages:
        stage_start = time.perf_counter()
        stage_checks, stage_curves = stage(context)
        per_check = (time.perf_counter() - stage_start) / max(len(stage_checks), 1)
        checks += [seed_summary(dataclasses.replace(c, seconds=per_check))
                   for c in stage_checks]
        curves += stage_curves
    return Verdict(
        theorem_id=plan.theorem.id,
        params={k: str(v) for k, v in plan.params.items()},
        budget=plan.budget,
        seeds=plan.seeds,
        checks=tuple(checks),
        curves=tuple(curves),
        seconds=time.perf_counter() - start,
    )
