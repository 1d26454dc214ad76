"""Tolerances are sized by their stated reason: loosening one far beyond it fails a test.

Two guards. Every named tolerance of an experiment module is recorded, by size and reason, in
the committed baselines, and the baseline comparison compares tolerances: a loosened constant is
a baseline change (``verify --all --check-baseline`` fails in CI) until the baselines are
rewritten in a reviewed commit. And where a tolerance is sized from a measurement (the Markov
fast budget's optimisation error), the measurement is repeated here and the tolerance must stay
within a stated factor of it.
"""

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from theorems import markov
from verify import baseline
from verify.experiments import (
    ical,
    markov_higher_order,
    markov_resolution,
    ntp,
    topics,
    topics_dynamics,
    topics_wikipedia,
)
from verify.experiments import markov as markov_experiments
from verify.records import Tolerance

BASELINES = Path(baseline.__file__).resolve().parent / "baselines"


def _named_tolerances() -> list[tuple[str, Tolerance]]:
    """Every module-level tolerance of an experiment module, once (some are re-imported)."""
    found: dict[int, tuple[str, Tolerance]] = {}
    for module in (markov_resolution, markov_experiments, markov_higher_order, ical, ntp, topics,
                   topics_dynamics, topics_wikipedia):
        for name, value in vars(module).items():
            if isinstance(value, Tolerance) and name.isupper():
                found.setdefault(id(value), (f"{module.__name__.rsplit('.', 1)[-1]}.{name}",
                                             value))
    return list(found.values())


def _recorded_tolerances() -> list[dict]:
    return [check["tolerance"] for path in sorted(BASELINES.glob("*.json"))
            for check in json.loads(path.read_text())["checks"].values()
            if check.get("tolerance")]


@pytest.mark.parametrize(("name", "tolerance"), _named_tolerances(),
                         ids=[name for name, _ in _named_tolerances()])
def test_every_named_tolerance_is_recorded_in_a_baseline(name, tolerance):
    recorded = [t for t in _recorded_tolerances() if t["reason"].startswith(tolerance.reason)]
    assert recorded, f"{name} is used by no recorded check: a change to it would go unnoticed"
    assert any(math.isclose(t["atol"], tolerance.atol, rel_tol=baseline.TOLERANCE_RTOL)
               and math.isclose(t["rtol"], tolerance.rtol, rel_tol=baseline.TOLERANCE_RTOL)
               for t in recorded), (
        f"{name} = {tolerance.atol:g} (rtol {tolerance.rtol:g}) differs from every recorded "
        "size: rewrite the baselines in a reviewed commit (verify --all --update-baseline)")


def test_a_loosened_tolerance_is_a_baseline_change():
    path = BASELINES / "ical-unitary-global-minima.json"
    old = json.loads(path.read_text())
    new = json.loads(path.read_text())
    loosened = next(c for c in new["checks"].values()
                    if c.get("tolerance") and c["tolerance"]["reason"] == ical.STRUCTURE.reason)
    loosened["tolerance"]["atol"] *= 1000
    changes = baseline.compare(old, new)
    assert any(change.name == loosened["key"] and change.what == "check" for change in changes), \
        changes


#: Where the Markov fast budget's optimisation error is largest, and a typical point: (p, q),
#: tied, and the start (None: the paper's init; "theta_*": the bigram point plus noise).
FAST_LOSS_POINTS = (
    ("7/10", "3/5", False, None),
    ("99/100", "49/50", False, None),
    ("1/100", "1/50", True, None),
    ("1/100", "1/50", True, "theta_*"),
)


def test_markov_fast_loss_tolerance_is_sized_by_the_measured_optimisation_error():
    errors = []
    for p, q, tied, start in FAST_LOSS_POINTS:
        prediction = markov.GLOBAL_MINIMA.predict(
            markov.GLOBAL_MINIMA.resolve_params({"p": p, "q": q}))
        rate = prediction.float("entropy_rate")
        theta = ((prediction.float("bigram_slope"), prediction.float("bigram_bias"))
                 if start else None)
        [run] = markov_experiments.train_seeds(float(Fraction(p)), float(Fraction(q)), 4, tied,
                                               "fast", (0,), torch.device("cpu"), {}, theta)
        errors.append(float(abs(run.curve - rate).max()) if start
                      else abs(run.final.mean - rate))
    worst = max(errors)
    headroom = markov_resolution.FAST_LOSS.atol / worst
    assert headroom >= markov_resolution.FAST_LOSS_MIN_HEADROOM, (errors, headroom)
    assert headroom <= markov_resolution.FAST_LOSS_MAX_HEADROOM, (errors, headroom)


#: A point where the trapped tied run creeps towards H(pi) so slowly that it never comes within
#: the loss tolerance in the fast budget (PLATEAU_GAP_FRACTION's measurement).
SLOW_TRAP = ("19/20", "3/20")


def test_markov_trap_band_separates_trapped_from_escaping_runs():
    """At a slow trap the loss-tolerance band alone misses the plateau (the reason the trap band
    is wider), while the trap band finds it for the tied run and the untied run at the same
    point, which escapes, stays out of it; both well away from the 20% threshold."""
    p, q = SLOW_TRAP
    prediction = markov.LOCAL_MINIMA.predict(markov.LOCAL_MINIMA.resolve_params({"p": p, "q": q}))
    h_pi, rate = prediction.float("unigram_loss"), prediction.float("entropy_rate")
    band = markov_experiments._trap_band(markov_resolution.FAST_LOSS, h_pi, rate)
    assert band == markov_experiments.PLATEAU_GAP_FRACTION * (h_pi - rate)
    assert band > markov_resolution.FAST_LOSS.atol
    runs = {tied: markov_experiments.train_seeds(float(Fraction(p)), float(Fraction(q)), 4, tied,
                                                 "fast", (0,), torch.device("cpu"), {})[0]
            for tied in (True, False)}
    steps = len(runs[True].curve)
    threshold = markov_experiments.PLATEAU_FRACTION * steps

    def held(tied: bool, width: float) -> int:
        return markov_experiments.longest_plateau(runs[tied].curve, h_pi, width).length

    assert held(True, markov_resolution.FAST_LOSS.atol) < threshold
    assert held(True, band) >= 1.5 * threshold
    assert held(False, band) <= threshold / 1.5
