"""The harness checks itself: pass rules, control direction, tolerance sizes, the seed summary,
obligation checks and the baseline comparison. Each probe below is a claim about the harness
that holds on the real code; each harness mutant (a plausible bug, monkeypatched in) must make
at least one probe fail."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import sympy as sp

import verify.baseline as baseline
import verify.harness as harness
from tests.mutation.mutants import OUTCOMES, Outcome
from theorems.core import Obligation
from verify.compare import apart, at_least, at_most, close
from verify.records import Relation, Tolerance, Verdict

TOLERANCE = Tolerance(0.1, "probe")


def _verdict(*checks) -> Verdict:
    return Verdict("probe", {}, "fast", (0,), tuple(checks))


def probe_close() -> bool:
    """``~`` passes inside its tolerance and fails outside (and on NaN)."""
    return (close("k", "k", "training", 1.0, 1.05, TOLERANCE).passed
            and not close("k", "k", "training", 1.0, 1.5, TOLERANCE).passed
            and not close("k", "k", "training", 1.0, float("nan"), TOLERANCE).passed)


def probe_control_direction() -> bool:
    """A control passes only when the measurement is outside the tolerance."""
    return (apart("k", "k", "control", 1.0, 1.5, TOLERANCE).passed
            and not apart("k", "k", "control", 1.0, 1.05, TOLERANCE).passed)


def probe_bounds() -> bool:
    """One-sided bounds pass on their side only."""
    return (at_most("k", "k", "training", 1.0, 0.5, "r").passed
            and not at_most("k", "k", "training", 1.0, 1.5, "r").passed
            and at_least("k", "k", "training", 1.0, 1.5, "r").passed
            and not at_least("k", "k", "training", 1.0, 0.5, "r").passed)


def probe_tolerance_size() -> bool:
    """The tolerance's size is what decides: 0.1 + 0.5 |x| admits 0.55 at x = 1, not 0.65."""
    tolerance = Tolerance(0.1, "probe", rtol=0.5)
    return (Relation.CLOSE.passes(1.0, 1.55, tolerance)
            and not Relation.CLOSE.passes(1.0, 1.65, tolerance))


def probe_seed_summary() -> bool:
    """Seeds are judged one by one: two of three pass."""
    check = close("k", "k", "training", 0.0, 0.5, TOLERANCE, per_seed=[0.0, 0.05, 0.5])
    summary = harness.seed_summary(check).details
    return summary.get("seeds_passing") == "2/3" and summary.get("spread") == 0.5


def probe_obligation() -> bool:
    """An obligation that is false fails, one that is true passes."""
    x = sp.Symbol("x", positive=True)
    return (not harness.obligation_check(Obligation("f", x + 1, "==", {x: 1}, x)).passed
            and harness.obligation_check(Obligation("t", (x + 1) ** 2, "==", {},
                                                    x**2 + 2 * x + 1)).passed)


def probe_baseline() -> bool:
    """The baseline comparison sees a flipped check, a drift and a loosened tolerance."""
    before = close("k", "k", "training", 1.0, 1.0, TOLERANCE)
    stored = baseline.snapshot(_verdict(before))
    flipped = close("k", "k", "training", 1.0, 1.5, TOLERANCE)
    drifted = close("k", "k", "training", 1.0, 1.09, Tolerance(0.1, "probe"))
    drifted = dataclasses.replace(drifted, measured=1.0 + 0.2)  # moved beyond its tolerance
    looser = close("k", "k", "training", 1.0, 1.0, Tolerance(100.0, "probe"))
    return all(baseline.compare(stored, baseline.snapshot(_verdict(after)))
               for after in (flipped, drifted, looser)) and not baseline.compare(
                   stored, baseline.snapshot(_verdict(before)))


PROBES: dict[str, Callable[[], bool]] = {
    name.removeprefix("probe_"): value for name, value in list(globals().items())
    if name.startswith("probe_")}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe_holds_on_the_real_harness(name: str) -> None:
    assert PROBES[name]()


def _always(result: bool) -> Callable:
    return lambda self, predicted, measured, tolerance: result


def _ignore_size(self, predicted, measured, tolerance):
    return original_passes(self, predicted, measured, Tolerance(1e300, ""))


original_passes = Relation.passes


def _swap_apart(self, predicted, measured, tolerance):
    if self is Relation.APART:
        return original_passes(Relation.CLOSE, predicted, measured, tolerance)
    return original_passes(self, predicted, measured, tolerance)


def _count_all(check):
    summary = original_summary(check)
    if "seeds_passing" in summary.details:
        total = len(check.per_seed)
        summary.details["seeds_passing"] = f"{total}/{total}"
    return summary


original_summary = harness.seed_summary


def _obligations_hold(obligation):
    return dataclasses.replace(original_obligation(obligation), passed=True)


original_obligation = harness.obligation_check

#: (what is broken, the object, the attribute, the replacement).
MUTANTS = [
    ("pass rule always says pass", Relation, "passes", _always(True)),
    ("pass rule always says fail", Relation, "passes", _always(False)),
    ("a control passes where the prediction holds", Relation, "passes", _swap_apart),
    ("tolerance size ignored", Relation, "passes", _ignore_size),
    ("tolerance bound ignores rtol", Tolerance, "bound", lambda self, predicted: self.atol),
    ("seed summary counts every seed as passing", harness, "seed_summary", _count_all),
    ("obligations always hold", harness, "obligation_check", _obligations_hold),
    ("baseline comparison finds nothing", baseline, "compare", lambda *a, **k: []),
    ("baseline drift rule off", Relation, "drifted", lambda self, *a: False),
]


@pytest.mark.parametrize(("what", "target", "attribute", "replacement"), MUTANTS,
                         ids=[m[0] for m in MUTANTS])
def test_harness_bug_is_caught(monkeypatch, what: str, target, attribute: str,
                               replacement) -> None:
    monkeypatch.setattr(target, attribute, replacement)
    failing = [name for name, probe in PROBES.items() if not probe()]
    outcome = Outcome("harness", "-", what, "killed" if failing else "survived",
                      f"probe: {failing[0]}" if failing else "every probe holds")
    OUTCOMES.append(outcome)
    assert failing, f"{what}: no probe notices"
