"""The mutation suite's machinery: wrong closed forms, and how a mutant is judged killed.

A closed-form mutant replaces one closed form of a theorem's prediction (every call of its
``predict``, so controls that predict at other parameters see it too) by a plausible wrong
one: scaled by ``1 + 1/1000`` and shifted by ``1/1000`` (exact rationals, so obligations stay
exact), or with two of its symbols swapped. It is *killed* when a check that passes on the
true prediction fails on the mutant and names the closed form in its ``uses``: first the
obligations are tried, then (only when none kills it) the experiment stages that read the
closed form, which are found by recording what each stage reads on the true prediction. A
stage that did not read a closed form cannot change when it is mutated, so it is not rerun.

A swap that leaves the closed form unchanged symbolically (``eta* = 1/(T+d-1)`` under
``d <-> T``) is *equivalent*: it cannot change any result, and is reported as such.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from theorems.core import Prediction, Theorem
from verify import registry
from verify.harness import obligation_check, prepare, run_stage
from verify.records import Check, Context, Plan

#: Relative and absolute size of the perturbation: far above float64 round-off, below every
#: loose training tolerance, so only checks that really consume the value can catch it.
EPSILON = sp.Rational(1, 1000)


@dataclass(frozen=True)
class Outcome:
    """What became of one mutant.

    Attributes
    ----------
    layer : str
        ``closed forms``, ``models``, ``data`` or ``harness``.
    theorem_id : str
    mutant : str
        What was changed, in words.
    status : {"killed", "survived", "equivalent"}
    by : str
        The check that killed it, or why it is equivalent, or what it survived.
    """

    layer: str
    theorem_id: str
    mutant: str
    status: str
    by: str = ""


#: Every mutant judged in this test session, in order (the suite's report reads it).
OUTCOMES: list[Outcome] = []


@dataclass(frozen=True)
class ClosedFormMutant:
    """One wrong closed form (or spectrum) of a prediction."""

    name: str
    how: str
    change: Callable[[Any], Any]
    spectrum: bool = False

    def apply(self, prediction: Prediction) -> Prediction:
        """``prediction`` with this closed form replaced."""
        if self.spectrum:
            key = self.name.removeprefix("spectrum ")
            spectra = {**prediction.spectra,
                       key: tuple((self.change(v), m) for v, m in prediction.spectra[key])}
            return dataclasses.replace(prediction, spectra=spectra)
        forms = {**prediction.closed_forms,
                 self.name: self.change(prediction.closed_forms[self.name])}
        return dataclasses.replace(prediction, closed_forms=forms)


def perturb(expr: Any) -> Any:
    """``expr (1 + EPSILON) + EPSILON``, entrywise for a matrix."""
    if isinstance(expr, sp.MatrixBase):
        return sp.ImmutableMatrix(expr.applyfunc(lambda e: e * (1 + EPSILON) + EPSILON))
    return sp.sympify(expr) * (1 + EPSILON) + EPSILON


def _swap(a: sp.Symbol, b: sp.Symbol) -> Callable[[Any], Any]:
    def change(expr: Any) -> Any:
        return sp.sympify(expr).subs({a: b, b: a}, simultaneous=True)
    return change


def closed_form_mutants(prediction: Prediction) -> Iterator[tuple[ClosedFormMutant, str]]:
    """Every mutant of ``prediction``, with ``""`` or the reason it is equivalent."""
    for name, expr in prediction.closed_forms.items():
        yield ClosedFormMutant(name, "x (1 + 1e-3) + 1e-3", perturb), ""
        symbols = sorted(sp.sympify(expr).free_symbols, key=str)
        for a, b in itertools.combinations(symbols, 2):
            mutant = ClosedFormMutant(name, f"{a} <-> {b}", _swap(a, b))
            difference = sp.sympify(expr) - mutant.change(expr)
            equivalent = sp.simplify(difference) == 0
            yield mutant, (f"{name} is symmetric in {a}, {b}" if equivalent else "")
    for name in prediction.spectra:
        yield ClosedFormMutant(f"spectrum {name}", "every eigenvalue x (1 + 1e-3) + 1e-3",
                               perturb, spectrum=True), ""


class _Reads(dict):
    """A closed-form mapping that records which names are read."""

    def __init__(self, data: Mapping[str, Any], log: set[str], prefix: str = "") -> None:
        super().__init__(data)
        self._log, self._prefix = log, prefix

    def __getitem__(self, name: str) -> Any:
        self._log.add(self._prefix + name)
        return super().__getitem__(name)


def _recording(prediction: Prediction, log: set[str]) -> Prediction:
    return dataclasses.replace(
        prediction, closed_forms=_Reads(prediction.closed_forms, log),
        spectra=_Reads(prediction.spectra, log, "spectrum "))


@dataclass
class TheoremRun:
    """One theorem at its fast defaults: the true run, recorded, and its mutants' runs."""

    theorem_id: str
    device: Any
    cache: dict = field(default_factory=dict)
    _stages: list[tuple[set[str], dict[str, bool]]] | None = None

    def __post_init__(self) -> None:
        self.entry = registry.entry(self.theorem_id)
        self.theorem: Theorem = self.entry.theorem
        self.plan: Plan = prepare(self.entry, {}, "fast")
        self.experiment = registry.experiment(self.theorem_id)
        self.prediction = self.theorem.predict(self.plan.params)
        self.true_obligations = {c.key: c.passed for c in map(
            obligation_check, self.theorem.obligations(self.plan.params, self.prediction))}

    def _context(self, theorem: Theorem, prediction: Prediction) -> Context:
        plan = dataclasses.replace(self.plan, theorem=theorem)
        return Context(plan, prediction, self.device, None, self.cache)

    def stages(self) -> list[tuple[set[str], dict[str, bool]]]:
        """Per stage of the true run: the closed forms it read and its checks' outcomes."""
        if self._stages is None:
            self._stages = []
            for stage in self.experiment.stages:
                log: set[str] = set()
                theorem = dataclasses.replace(
                    self.theorem, predict=lambda p, log=log: _recording(self.theorem.predict(p),
                                                                         log))
                checks, _ = run_stage(stage, self._context(theorem,
                                                           _recording(self.prediction, log)))
                self._stages.append((log, {c.key: c.passed for c in checks}))
        return self._stages

    def judge(self, mutant: ClosedFormMutant) -> Outcome:
        """Run ``mutant`` and say whether a check naming its closed form caught it."""
        mutated = mutant.apply(self.prediction)
        label = f"{mutant.name}: {mutant.how}"
        caught_unnamed: list[str] = []
        for check in map(obligation_check, self.theorem.obligations(self.plan.params, mutated)):
            if self.true_obligations.get(check.key) and not check.passed:
                if mutant.name in check.uses:
                    return Outcome("closed forms", self.theorem_id, label, "killed",
                                   f"obligation: {check.name}")
                caught_unnamed.append(check.name)
        theorem = dataclasses.replace(self.theorem,
                                      predict=lambda p: mutant.apply(self.theorem.predict(p)))
        for stage, (reads, passed) in zip(self.experiment.stages, self.stages(), strict=True):
            if mutant.name not in reads:
                continue
            checks, _ = run_stage(stage, self._context(theorem, mutated))
            for check in checks:
                if passed.get(check.key) and not check.passed:
                    if mutant.name in check.uses:
                        return Outcome("closed forms", self.theorem_id, label, "killed",
                                       f"{check.kind}: {check.name}")
                    caught_unnamed.append(check.name)
        detail = ("caught only by checks that do not name it: " + "; ".join(caught_unnamed)
                  if caught_unnamed else "no check failed")
        return Outcome("closed forms", self.theorem_id, label, "survived", detail)


def first_failure(checks: list[Check]) -> str:
    """The first failing check of a verdict, for the report."""
    failed = [c for c in checks if not c.passed]
    return f"{failed[0].kind}: {failed[0].name}" if failed else ""
