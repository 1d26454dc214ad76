"""The records that cross the boundaries of ``verify`` (a leaf module: records only).

Nothing here runs an experiment or looks anything up. A paper registers itself as a
:class:`Paper` holding its :class:`TheoremEntry` records; a request becomes a :class:`Plan`; the
harness receives the plan and the theorem's :class:`Experiment` (its stages are passed in, never
looked up), gives every stage a :class:`Context` and collects :class:`Check`, :class:`Curve`
and :class:`Structure` records into a :class:`Verdict`. A :class:`Relation` owns its symbol,
its pass rule and its drift rule, so reports, baselines and docs all read them from one place.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the records name these types; importing them here would load sympy
    import numpy as np

    from theorems.core import ParamValue, Prediction, Theorem

#: Version of the JSON layout of reports and baselines; bumped when a field changes meaning.
SCHEMA_VERSION = 4

Budget = Literal["fast", "full"]
#: The budgets every experiment declares, in the order the docs show them.
BUDGETS: tuple[Budget, ...] = ("fast", "full")
CheckKind = Literal["obligation", "guard", "bridge", "training", "control"]
#: The kinds in the order reports group them.
CHECK_KINDS: tuple[CheckKind, ...] = ("obligation", "guard", "bridge", "training", "control")
#: ``progress_factory(label, total)`` returns ``advance(done, total, last_loss)``.
ProgressFactory = Callable[[str, int], Callable[[int, int, float], None]]


class Relation(StrEnum):
    """How a check compares its measured value with its predicted one.

    The value (``"~"``, ...) is what the JSON files store; :attr:`symbol` is what tables show.
    """

    #: Within the tolerance of the prediction.
    CLOSE = "~"
    #: Outside the tolerance (a control: the prediction must visibly fail there).
    APART = "!~"
    #: One-sided bound ``measured <= predicted``.
    AT_MOST = "<="
    #: One-sided bound ``measured >= predicted``.
    AT_LEAST = ">="
    #: An exact proof obligation (decided by sympy, no tolerance).
    HOLDS = "holds"

    @property
    def symbol(self) -> str:
        """How the relation reads in a table (``≈``, ``≠``, ``≤``, ``≥``; empty for proofs)."""
        return {"~": "≈", "!~": "≠", "<=": "≤", ">=": "≥", "holds": ""}[self.value]

    @property
    def uses_tolerance_size(self) -> bool:
        """Whether the tolerance's size enters the pass rule (two-sided comparisons)."""
        return self in (Relation.CLOSE, Relation.APART)

    def passes(self, predicted: float, measured: float, tolerance: Tolerance) -> bool:
        """The pass rule (False for NaN).

        ``~``: ``|measured - predicted| <= tolerance``; ``!~``: beyond it; ``<=`` / ``>=``:
        the one-sided bound ``predicted``.
        """
        if self is Relation.HOLDS:
            raise ValueError("an obligation is decided by sympy, not by a numeric rule")
        if not (math.isfinite(measured) and math.isfinite(predicted)):
            return False
        if self is Relation.CLOSE:
            return abs(measured - predicted) <= tolerance.bound(predicted)
        if self is Relation.APART:
            return abs(measured - predicted) > tolerance.bound(predicted)
        if self is Relation.AT_MOST:
            return measured <= predicted
        return measured >= predicted

    def drifted(self, before: float, after: float, predicted: float,
                tolerance: Tolerance) -> bool:
        """The drift rule of proof regression: whether a measurement moved too far.

        A ``~`` check drifts when its measured value moved from the baseline by more than its
        tolerance (even if it still passes); the other relations only flip.
        """
        if self is not Relation.CLOSE:
            return False
        return not abs(after - before) <= tolerance.bound(predicted)


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

    def describe(self) -> str:
        """Short form for tables, e.g. ``1e-10``."""
        text = f"{self.atol:.1g}"
        return text + (f" + {self.rtol:.1g}|x|" if self.rtol else "")


@dataclass(frozen=True)
class Check:
    """One comparison between a prediction and a measurement.

    Attributes
    ----------
    key : str
        Stable identifier within its theorem (baselines are keyed by it), separate from the
        display name so that rewording a label does not look like a removed check.
    name : str
        What is compared, in words.
    kind : {"obligation", "guard", "bridge", "training", "control"}
        Obligation: exact sympy proof step. Guard: a condition on the predicted values (and
        the tolerances) without which the numeric checks could not discriminate; it measures
        nothing. Bridge: the torch model at the theorem's point against the sympy values.
        Training: where real training ends (always a measurement). Control: the same training
        outside the assumptions, where the prediction must fail.
    predicted : float or str
        The theorem's value (or the claim in words).
    measured : float or str
        What the numeric side gave.
    relation : Relation
    tolerance : Tolerance or None
        None for exact obligations.
    passed : bool
        The verdict of this check.
    seconds : float
        Wall time spent on it.
    per_seed : tuple[float, ...] or None
        The measured value of every seed when the check covers several (``measured`` is then
        the worst seed).
    details : dict
        Further numbers for the JSON report (plateau steps, standard errors, the method of an
        obligation, the seed summary, a control's margin, ...).
    uses : tuple[str, ...]
        The closed forms of the prediction this check compares with (a wrong value of one of
        them should make it fail; the mutation tests hold it to that).
    """

    key: str
    name: str
    kind: CheckKind
    predicted: float | str
    measured: float | str
    relation: Relation
    tolerance: Tolerance | None
    passed: bool
    seconds: float = 0.0
    per_seed: tuple[float, ...] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    uses: tuple[str, ...] = ()


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
        ``(steps,)`` value per step.
    references : dict[str, float]
        Horizontal lines (e.g. ``entropy rate``, ``H(pi)``) from the prediction.
    ylabel : str
        What ``values`` are, said by the experiment that knows (exact population loss, sampled
        batch loss, squared loss, a rate); there is no default.
    xscale, yscale : {"log", "linear"}
        Axis scales (``1 - corr`` vs step is read on log-log axes, a linear rate on a log y).
    steps : numpy.ndarray or None
        ``(len(values),)`` step of each value (a curve probed at some steps only); ``None``
        means one value per step, drawn at steps ``1, 2, ...``.
    marks : dict[str, float]
        Vertical lines at these steps, in the curve's colour (e.g. the step where the curve
        reaches half its final value).
    caption : str
        How to read the figure (the first non-empty caption of a title is the figure's).
    """

    title: str
    label: str
    values: np.ndarray
    references: dict[str, float]
    ylabel: str
    xscale: str = "log"
    yscale: str = "linear"
    steps: np.ndarray | None = None
    marks: dict[str, float] = field(default_factory=dict)
    caption: str = ""


@dataclass(frozen=True)
class Structure:
    """A matrix the theorem predicts next to the trained matrix of every seed, for the figures.

    Drawn as small multiples on one colour scale (the predicted panel first), so a reader sees
    whether training produced the claimed structure (e.g. ``a Blk + b (J - Blk)`` for the value
    matrix of Li et al. 2023, ``eta* I`` for the one-step head of Sander et al. 2024).

    Attributes
    ----------
    title : str
        Figure title (one figure per record).
    predicted : numpy.ndarray
        ``(m, n)`` the prediction's matrix, from the symbolic closed form as floats.
    trained : tuple[numpy.ndarray, ...]
        ``(m, n)`` the trained matrix of each seed (or run).
    labels : tuple[str, ...]
        Panel title of each trained matrix (``seed 0``), as many as ``trained``.
    colorbar : str
        What the entries are (the colour bar's label).
    caption : str
        How to read the figure.
    predicted_label : str
        Panel title of the predicted matrix (the closed form it shows).
    scale : float or None
        The colour scale runs over ``[-scale, scale]``; ``None`` takes the largest absolute
        entry of all panels, so zero is always the scale's middle.
    """

    title: str
    predicted: np.ndarray
    trained: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    colorbar: str
    caption: str
    predicted_label: str = "predicted"
    scale: float | None = None


Plot = Curve | Structure
"""What a stage returns for the figures: curves (grouped by title) and structure panels."""


@dataclass(frozen=True)
class Cost:
    """One way the cost of a request grows with its parameters (checked before any work).

    Attributes
    ----------
    quantity : str
        What grows, in words (``symbolic Hessian obligations``, ``topic sets enumerated``).
    parameters : tuple[str, ...]
        The parameters that drive it (named in the refusal).
    estimate : callable
        ``estimate(params, seeds) -> float``: the predicted cost in ``unit``, from a stated
        model of its growth calibrated by a measurement (say which in the registration).
    unit : {"s", "B"}
        Seconds of one CPU core, or bytes of memory.
    """

    quantity: str
    parameters: tuple[str, ...]
    estimate: Callable[[Mapping[str, Any], int], float]
    unit: Literal["s", "B"] = "s"


#: Per budget, the largest estimated cost a request may have without ``--allow-expensive``:
#: seconds on a 2-core CPU (fast: what a CI job or a laptop session affords; full: a day, since
#: the full budget is meant for a GPU, which the CPU-calibrated estimates overstate) and bytes
#: of memory (what a 2-core 24 GiB CI machine, or one large GPU node, holds).
COST_LIMITS: Mapping[str, Mapping[str, float]] = {
    "fast": {"s": 600.0, "B": 8 * 2**30},
    "full": {"s": 24 * 3600.0, "B": 100 * 2**30},
}


@dataclass(frozen=True)
class TheoremEntry:
    """One theorem as its paper registers it: the claim and how to run its experiment.

    Attributes
    ----------
    theorem : theorems.core.Theorem
        The claim (sympy only).
    experiment : str
        ``"module:attribute"`` of its :class:`Experiment`; imported only when the theorem runs,
        so listing and validating never load torch.
    defaults : Mapping[str, Mapping[str, str]]
        Per budget, parameter values that replace the theorem's defaults (e.g. ``d=8`` at
        paper scale) unless the user sets them.
    seeds : Mapping[str, int]
        Per budget, the number of seeds used when none is asked for.
    costs : Mapping[str, tuple[Cost, ...]]
        Per budget, how the cost of a request grows; a request whose estimate exceeds
        :data:`COST_LIMITS` is refused before any work.
    unresolvable : callable or None
        ``unresolvable(prediction) -> list[str]``: why the experiment cannot decide the
        theorem at these parameters although they satisfy its assumptions (e.g. two
        predicted losses closer than the loss tolerance), or because this environment cannot
        run the experiment at all (e.g. an optional dependency that holds its data is not
        installed). A non-empty answer is refused like a violated assumption, before any
        work. Torch-free.
    """

    theorem: Theorem
    experiment: str
    defaults: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    seeds: Mapping[str, int] = field(default_factory=lambda: {"fast": 1, "full": 5})
    costs: Mapping[str, tuple[Cost, ...]] = field(default_factory=dict)
    unresolvable: Callable[[Prediction], list[str]] | None = None

    def budget_defaults(self, budget: str) -> Mapping[str, str]:
        """Parameter defaults of ``budget``."""
        return self.defaults.get(budget, {})

    def default_seeds(self, budget: str) -> int:
        """Number of seeds used when ``--seeds`` is not given."""
        return self.seeds[budget]


@dataclass(frozen=True)
class Paper:
    """A paper: its citation, its setting in a few lines, and its registered theorems.

    A paper is one unit: a distribution declares it under the entry-point group
    ``transformer_theorems.papers`` (see :mod:`verify.registry`) and ``verify`` lists, runs,
    sweeps, baselines and documents its theorems.

    Attributes
    ----------
    key : str
        Citation key (``makkuva2024markov``), also the key of :attr:`bibtex`.
    title : str
    authors : tuple[str, ...]
    year : int
    arxiv : str
        arXiv identifier (``2402.04161``); empty when the paper has none.
    prefix : str
        The prefix of every theorem id of the paper (``markov`` for ``markov-local-minima``).
    setting : str
        Markdown for the paper's docs page: the data, the model and what the theorems say.
    theorems : tuple[TheoremEntry, ...]
        In the paper's order (the docs and ``--list`` keep it).
    bibtex : str
        The BibTeX entry.
    baselines : pathlib.Path or None
        Directory of the paper's committed proof-regression baselines.
    notation : tuple[tuple[str, str], ...]
        ``(LaTeX symbol, meaning)`` for every symbol the statements, assumptions and closed
        forms use, in reading order; the paper's docs page opens with it.
    """

    key: str
    title: str
    authors: tuple[str, ...]
    year: int
    arxiv: str
    prefix: str
    setting: str
    theorems: tuple[TheoremEntry, ...]
    bibtex: str
    baselines: Path | None = None
    notation: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        """The paper's arXiv page (empty without an arXiv id)."""
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else ""

    def citation(self) -> str:
        """``Makkuva et al. (2024)``: the short form used in tables."""
        first = self.authors[0].split(",")[0].split()[-1] if self.authors else self.key
        more = " et al." if len(self.authors) > 2 else (
            f" and {self.authors[1].split(',')[0].split()[-1]}" if len(self.authors) == 2 else "")
        return f"{first}{more} ({self.year})"


@dataclass(frozen=True)
class Plan:
    """A validated request: theorem, admissible parameters, budget and seeds."""

    theorem: Theorem
    params: dict[str, ParamValue]
    budget: Budget
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Context:
    """What an experiment's stage receives.

    Attributes
    ----------
    plan : Plan
    prediction : theorems.core.Prediction
    device : torch.device
        Typed loosely so that this module does not import torch.
    progress : ProgressFactory or None
    cache : MutableMapping
        Finished training runs of this invocation, keyed by their full specification (a
        control may reuse another theorem's run). Passed in by the caller, never global.
    """

    plan: Plan
    prediction: Prediction
    device: object
    progress: ProgressFactory | None = None
    cache: MutableMapping[Any, Any] = field(default_factory=dict)


Stage = Callable[[Context], tuple[list[Check], list[Plot]]]


@dataclass(frozen=True)
class Experiment:
    """The numeric side of one theorem.

    Attributes
    ----------
    stages : tuple[Stage, ...]
        Bridge, training and control stages, run in order.
    phase : callable, optional
        ``phase(params, budget, seeds, device, cache) -> {name: value}``: quantities a sweep
        measures at every grid point, inside the theorem's assumptions or not.
    overlay : callable, optional
        ``overlay(ax, x_name, y_name)`` draws the theorem's boundary on a sweep heatmap.
    budgets : Mapping[str, object]
        Per budget, the experiment's sizes (a frozen dataclass whose ``Attributes`` section
        says what each field is: sequence length, optimiser steps, batch, dtype); the docs
        show them as the training setup of each budget.
    """

    stages: tuple[Stage, ...]
    phase: Callable[..., dict[str, float]] | None = None
    overlay: Callable[..., None] | None = None
    budgets: Mapping[str, Any] = field(default_factory=dict)


def _shown(value: float | str, limit: int = 60) -> str:
    if isinstance(value, str):
        return value if len(value) <= limit else value[: limit - 3] + "..."
    return f"{value:.6g}"


@dataclass(frozen=True)
class Verdict:
    """All checks of one theorem.

    Prints as the verdict table in a terminal (rich) and as an HTML table in a notebook;
    :meth:`to_records` gives one dict per check for a data frame and :meth:`figures` draws the
    training curves.

    Attributes
    ----------
    theorem_id : str
    params : dict[str, str]
        Exact parameter values as strings (``7/10``), enough to reproduce the run.
    budget : str
    seeds : tuple[int, ...]
    checks : tuple[Check, ...]
    curves : tuple[Curve | Structure, ...]
        What the figures draw: training curves and predicted-vs-trained matrices.
    seconds : float
    prediction : dict
        Every closed form of the prediction: symbolic and at the point, exact (LaTeX and
        ``srepr``) and as a float.
    notes : tuple[str, ...]
        Lines printed under the table: what the verdict does not cover at the requested
        parameters (an obligation built at a smaller size, and what covers the rest).
    """

    theorem_id: str
    params: dict[str, str]
    budget: str
    seeds: tuple[int, ...]
    checks: tuple[Check, ...]
    curves: tuple[Curve | Structure, ...] = field(default=())
    seconds: float = 0.0
    prediction: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when there is at least one check and every check passed."""
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def title(self) -> str:
        """``id  (p=1/2, q=4/5, budget fast, seeds 1)``."""
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return (f"{self.theorem_id}  ({params}, budget {self.budget}, "
                f"seeds {len(self.seeds)})")

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """The table's rows: kind, check, predicted, measured, tolerance, pass."""
        rows = []
        for check in self.checks:
            tolerance = ""
            if check.relation is Relation.HOLDS:
                tolerance = str(check.details.get("method", ""))
            elif check.tolerance is not None and check.relation.uses_tolerance_size:
                tolerance = check.tolerance.describe()
            margin = check.details.get("margin", math.nan) if check.kind == "control" else None
            if margin is not None and math.isfinite(margin) and check.passed:
                if check.relation.uses_tolerance_size:  # how far the prediction misses
                    missed = f"misses by {margin:.3g} tolerances"
                else:  # one-sided: the distance past the bound, absolute
                    missed = f"clears the bound by {abs(check.measured - check.predicted):.3g}"
                tolerance = f"{tolerance}; {missed}" if tolerance else missed
            measured = _shown(check.measured)
            if "seeds_passing" in check.details:  # worst seed, then how many seeds pass
                measured += (f" (worst; {check.details['seeds_passing']} seeds pass, spread "
                             f"{check.details['spread']:.3g})")
            rows.append((check.kind, check.name,
                         f"{check.relation.symbol} {_shown(check.predicted)}".strip(), measured,
                         tolerance, "pass" if check.passed else "FAIL"))
        return rows

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per check (``pandas.DataFrame(verdict.to_records())``)."""
        return [{"theorem": self.theorem_id, "key": c.key, "kind": c.kind, "check": c.name,
                 "relation": c.relation.value, "predicted": c.predicted,
                 "measured": c.measured,
                 "atol": c.tolerance.atol if c.tolerance else None,
                 "rtol": c.tolerance.rtol if c.tolerance else None,
                 "passed": c.passed, "seconds": c.seconds,
                 "per_seed": list(c.per_seed) if c.per_seed is not None else None,
                 "uses": list(c.uses)}
                for c in self.checks]

    def table(self) -> Any:
        """The verdict as a ``rich.table.Table`` (what ``verify`` prints)."""
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.title, title_justify="left")
        for column in ("kind", "check", "predicted", "measured", "tolerance", "pass"):
            table.add_column(column, overflow="fold")
        for *cells, state in self.rows():
            table.add_row(*(Text(cell) for cell in cells),
                          "[green]pass[/green]" if state == "pass" else "[red]FAIL[/red]")
        return table

    def summary(self) -> str:
        """The verdict line: ``id: PASS in 7.9 s`` or ``id: FAIL (2 failed) in ...``."""
        failed = sum(not c.passed for c in self.checks)
        status = "PASS" if self.passed else f"FAIL ({failed} failed)"
        return f"{self.theorem_id}: {status} in {self.seconds:.1f} s"

    def __rich__(self) -> Any:
        from rich.console import Group

        return Group(self.table(), *(f"note: {note}" for note in self.notes), self.summary())

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=150, record=True, file=_NullWriter())
        console.print(self)
        return console.export_text()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in
                       ("kind", "check", "predicted", "measured", "tolerance", "pass"))
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
            + f"<td style='color:{'green' if state == 'pass' else 'red'}'>{state}</td></tr>"
            for *cells, state in self.rows())
        return (f"<p><b>{html.escape(self.title)}</b></p><table><thead><tr>{head}</tr>"
                f"</thead><tbody>{body}</tbody></table>"
                + "".join(f"<p>note: {html.escape(note)}</p>" for note in self.notes)
                + f"<p>{html.escape(self.summary())}</p>")

    def figures(self, directory: str | Path | None = None) -> list[Any]:
        """Draw one matplotlib figure per curve title and per structure record (the global
        backend is left alone).

        When ``directory`` is given it is created and every figure saved there as
        ``<id>-<index>.png``, its caption as ``<id>-<index>.txt``.
        """
        from verify.figures import draw_curves

        return draw_curves(self.theorem_id, self.curves,
                           Path(directory) if directory is not None else None)


class _NullWriter:
    """A file that discards what it is given (``__str__`` records, it does not print)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""
