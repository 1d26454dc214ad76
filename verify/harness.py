"""The harness: validate a request, check a theorem's obligations, run the experiment it is given.

:func:`prepare` validates everything a user can get wrong (parameters, assumptions, seeds)
before any work starts and without importing torch; :func:`run` then produces a
:class:`~verify.records.Verdict` from the plan and the :class:`~verify.records.Experiment` it
receives. The harness looks nothing up: which theorem and which experiment is the caller's
choice (:mod:`verify.api` asks :mod:`verify.registry`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import sympy as sp

from theorems.core import Obligation, ParamValue, Prediction, TheoremError
from verify.records import (
    BUDGETS,
    COST_LIMITS,
    Budget,
    Check,
    Context,
    Cost,
    Experiment,
    Plan,
    Plot,
    ProgressFactory,
    Relation,
    Stage,
    TheoremEntry,
    Verdict,
)


class AssumptionError(TheoremError):
    """Parameters outside a theorem's assumptions."""


class CostError(TheoremError):
    """A request whose estimated cost exceeds its budget's limit."""


#: The most seeds a request may train without ``allow_expensive`` (each seed is a full run).
MAX_SEEDS = {"fast": 64, "full": 256}


def _describe_cost(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 2**30:.3g} GiB"
    return f"{value:.3g} s" if value < 3600 else f"{value / 3600:.3g} h"


def estimated_seconds(entry: TheoremEntry, params: Mapping[str, Any], budget: Budget,
                      seeds: int) -> float:
    """The paper's estimate of a request's CPU seconds (the sum of its time costs; 0 when it
    declares none): what the docs quote and what ``verify --all --workers`` starts first."""
    estimates = (_estimate(cost, params, seeds) for cost in entry.costs.get(budget, ())
                 if cost.unit == "s")
    return sum(e for e in estimates if e is not None)


def _estimate(cost: Cost, params: Mapping[str, Any], seeds: int) -> float | None:
    """``cost``'s estimate: infinite beyond any float (certainly too expensive), None for an
    inadmissible value (a negative size: the assumptions name it)."""
    try:
        return float(cost.estimate(params, seeds))
    except OverflowError:
        return math.inf
    except (ArithmeticError, TypeError, ValueError):
        return None


#: With ``allow_expensive`` a request is still refused beyond this many times its budget's
#: limit: such a size (``d = 10^20``, ``T0 = 10^30``) would run for months or ask for more
#: memory than any machine has, and sympy or torch would hang or crash on it.
EXPENSIVE_CEILING = 100
#: A refusal names the parts of a request's cost that make up at least this share of it.
DRIVING_SHARE = 0.1


def check_cost(entry: TheoremEntry, params: Mapping[str, Any], budget: Budget,
               seeds: int, allow_expensive: bool = False) -> None:
    """Refuse a request whose estimated cost exceeds its budget's limit (unless
    ``allow_expensive``; :data:`EXPENSIVE_CEILING` times the limit, and a hundred times the
    seed limit, are refused even then). The time of a request is the sum of its parts' times
    (they run one after the other), its memory the largest part's.

    Raises
    ------
    CostError
        Naming the parts and parameters, the estimate, the limit and how to proceed.
    """
    theorem_id = entry.theorem.id
    if seeds > MAX_SEEDS[budget] * 100 or (seeds > MAX_SEEDS[budget] and not allow_expensive):
        raise CostError(f"{theorem_id}: {seeds} seeds are more than the {budget} budget's limit "
                        f"of {MAX_SEEDS[budget]} training runs; use fewer seeds or (up to "
                        f"{MAX_SEEDS[budget] * 100}) --allow-expensive")
    for unit in ("B", "s"):  # memory first: what cannot fit is refused for that, whatever its time
        parts = [(cost, estimate) for cost in entry.costs.get(budget, ()) if cost.unit == unit
                 and (estimate := _estimate(cost, params, seeds)) is not None]
        if not parts:
            continue
        total = (sum(e for _, e in parts) if unit == "s" else max(e for _, e in parts))
        limit = COST_LIMITS[budget][unit]
        if total <= limit * (EXPENSIVE_CEILING if allow_expensive else 1):
            continue
        if unit == "B":  # the largest part alone
            parts = [max(parts, key=lambda part: part[1])]
        # the parts that matter (a tenth of the total or more) name the parameters to change
        named = [cost for cost, estimate in parts if estimate >= DRIVING_SHARE * total]
        drivers = list(dict.fromkeys(name for cost in named for name in cost.parameters))
        where = ", ".join(f"{name}={params[name]}" for name in drivers)
        what = " and ".join(cost.quantity for cost in named)
        needed = f"{_describe_cost(total, unit)}{' in all' if len(named) > 1 else ''}"
        if allow_expensive:
            raise CostError(
                f"{theorem_id}: {what} at {where} would take about {needed}, more than "
                f"{EXPENSIVE_CEILING} x the {budget} budget's limit of "
                f"{_describe_cost(limit, unit)}, which even --allow-expensive does not run; "
                f"use a smaller {' or '.join(drivers)}")
        other = (" or --budget full on a GPU" if budget == "fast"
                 and total <= COST_LIMITS["full"][unit] else "")
        override = ", or --allow-expensive" if total <= limit * EXPENSIVE_CEILING else ""
        raise CostError(
            f"{theorem_id}: {what} at {where} would take about {needed}, above the {budget} "
            f"budget's limit of {_describe_cost(limit, unit)}; use a smaller "
            f"{' or '.join(drivers)}{other}{override}")


def prepare(
    entry: TheoremEntry,
    overrides: Mapping[str, str | ParamValue],
    budget: Budget = "fast",
    seeds: int | None = None,
    allow_expensive: bool = False,
) -> Plan:
    """Validate a request for the theorem of ``entry``.

    Raises
    ------
    theorems.TheoremError
        Unknown budget, unknown or malformed parameter, a violated assumption
        (:class:`AssumptionError`, naming the assumption; also where the registration says
        the experiment cannot decide the theorem), a number of seeds below 1, or an
        estimated cost beyond the budget's limit (:class:`CostError`, unless
        ``allow_expensive``).
    """
    theorem = entry.theorem
    if budget not in BUDGETS:
        raise TheoremError(f"unknown budget {budget!r}; use {' or '.join(BUDGETS)}")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int)
                              or seeds < 1):
        raise TheoremError(f"seeds must be a whole number of at least 1 (got {seeds!r})")
    defaults = {k: v for k, v in entry.budget_defaults(budget).items() if k not in overrides}
    params = theorem.resolve_params({**defaults, **overrides})
    count = seeds if seeds is not None else entry.default_seeds(budget)
    # first: checking some assumptions (random orders) can cost as much as the run
    check_cost(entry, params, budget, count, allow_expensive)
    violations = theorem.assumptions(params)
    if violations:
        raise AssumptionError(f"{theorem.id}: " + "; ".join(violations))
    reasons = entry.unresolvable(theorem.predict(params)) if entry.unresolvable else []
    if reasons:
        raise AssumptionError(f"{theorem.id}: the experiment cannot decide the theorem here: "
                              + "; ".join(reasons))
    return Plan(theorem, params, budget, tuple(range(count)))


def obligation_check(obligation: Obligation) -> Check:
    """Check one obligation exactly and record it (keyed by its name)."""
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
        key=obligation.name,
        name=obligation.name,
        kind="obligation",
        predicted=claim,
        measured=result.value,
        relation=Relation.HOLDS,
        tolerance=None,
        passed=result.holds,
        seconds=time.perf_counter() - start,
        details={"method": result.method,
                 **({"built_at": dict(obligation.sizes), "scope": obligation.scope}
                    if obligation.sizes else {})},
        uses=obligation.uses,
    )


def scope_notes(obligations: list[Obligation], params: Mapping[str, ParamValue]) -> list[str]:
    """One line per obligation built at sizes other than the requested ones: where it was
    decided, what was asked, and what covers the rest (the obligation's scope)."""
    notes = []
    for obligation in obligations:
        differs = {name: size for name, size in obligation.sizes.items()
                   if name in params and str(params[name]) != str(size)}
        if differs:
            built = ", ".join(f"{k}={v}" for k, v in differs.items())
            asked = ", ".join(f"{k}={params[k]}" for k in differs)
            notes.append(f"obligation '{obligation.name}' was decided at {built}, not at the "
                         f"requested {asked}: {obligation.scope}")
    return notes


def seed_summary(check: Check) -> Check:
    """Add the number of seeds that pass and the spread to a multi-seed check.

    A check over several seeds compares the worst seed; its :attr:`~Check.per_seed` values are
    judged one by one with the same relation and tolerance.
    """
    values = check.per_seed
    if (values is None or len(values) < 2 or isinstance(check.predicted, str)
            or check.tolerance is None or check.relation is Relation.HOLDS):
        return check
    passing = sum(check.relation.passes(check.predicted, v, check.tolerance) for v in values)
    return dataclasses.replace(check, details={
        **check.details, "seeds_passing": f"{passing}/{len(values)}",
        "fraction_passing": passing / len(values),
        "spread": float(max(values) - min(values))})


def prediction_record(prediction: Prediction) -> dict[str, dict[str, Any]]:
    """Every closed form of ``prediction``, symbolic and at its point: LaTeX, ``srepr`` and
    float (what the JSON report and the baselines carry)."""
    records: dict[str, dict[str, Any]] = {}
    for name, expr in prediction.closed_forms.items():
        value = prediction.value(name)
        records[name] = {"srepr": sp.srepr(sp.sympify(expr)), "latex": sp.latex(expr),
                         "value_srepr": sp.srepr(value), "value_latex": sp.latex(value),
                         "float": _float(value),
                         "description": prediction.descriptions.get(name, "")}
    for name, pairs in prediction.spectra.items():
        at_point = [(sp.sympify(v).subs(prediction.point), m) for v, m in pairs]
        records[f"spectrum {name}"] = {
            "srepr": sp.srepr(sp.Tuple(*(sp.Tuple(v, m) for v, m in pairs))),
            "latex": r",\ ".join(f"{sp.latex(v)}\\ (\\times {m})" for v, m in pairs),
            "value_latex": r",\ ".join(f"{sp.latex(v)}\\ (\\times {m})" for v, m in at_point),
            "float": [[_float(v), m] for v, m in at_point],
            "description": prediction.descriptions.get(name, ""),
        }
    return records


def _float(value: sp.Basic) -> Any:
    """A float view of an exact value (a nested list for a matrix, None when not numeric)."""
    if isinstance(value, sp.MatrixBase):
        return [[_float(entry) for entry in row] for row in value.tolist()]
    try:
        return float(sp.N(value, 30))
    except (TypeError, ValueError):
        return None


def stage_context(plan: Plan, device: object, progress: ProgressFactory | None = None,
                  cache: MutableMapping[Any, Any] | None = None) -> Context:
    """What the stages of ``plan``'s experiment receive: the theorem's prediction at the
    plan's parameters, the device, the progress factory and the cache of training runs (a
    fresh one when none is given)."""
    return Context(plan, plan.theorem.predict(plan.params), device, progress,
                   {} if cache is None else cache)


def run(plan: Plan, experiment: Experiment, device: object,
        progress: ProgressFactory | None = None,
        cache: MutableMapping[Any, Any] | None = None) -> Verdict:
    """Obligations, then the experiment's bridge, training and control stages.

    ``cache`` holds the training runs of one invocation (stages of several theorems can share
    a run); a fresh one is used when none is given.
    """
    start = time.perf_counter()
    context = stage_context(plan, device, progress, cache)
    obligations = plan.theorem.obligations(plan.params, context.prediction)
    checks = [obligation_check(ob) for ob in obligations]
    curves: list[Plot] = []
    for stage in experiment.stages:
        stage_checks, stage_curves = run_stage(stage, context)
        checks += stage_checks
        curves += stage_curves
    return Verdict(
        theorem_id=plan.theorem.id,
        params={k: str(v) for k, v in plan.params.items()},
        budget=plan.budget,
        seeds=plan.seeds,
        checks=tuple(checks),
        curves=tuple(curves),
        seconds=time.perf_counter() - start,
        prediction=prediction_record(context.prediction),
        notes=tuple(scope_notes(obligations, plan.params)),
    )


def run_stage(stage: Stage, context: Context) -> tuple[list[Check], list[Plot]]:
    """One stage of an experiment: its checks (timed, with the seed summary) and curves."""
    stage_start = time.perf_counter()
    stage_checks, stage_curves = stage(context)
    per_check = (time.perf_counter() - stage_start) / max(len(stage_checks), 1)
    return ([seed_summary(dataclasses.replace(c, seconds=per_check)) for c in stage_checks],
            list(stage_curves))
