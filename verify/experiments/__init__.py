"""The table that pairs each theorem id with its numeric experiment.

An :class:`Experiment` has budget-specific parameter defaults, a default number of seeds, and
``stages``: callables ``stage(context) -> (checks, curves)`` run in order (bridge, training,
control). Paper modules register theirs in :data:`EXPERIMENTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from numerics.train import History
from verify.harness import Context, Curve
from verify.tolerance import Check

Stage = Callable[[Context], tuple[list[Check], list[Curve]]]


@dataclass(frozen=True)
class Experiment:
    """The numeric side of one theorem.

    Attributes
    ----------
    stages : tuple[Stage, ...]
        Bridge, training and control stages, run in order.
    defaults : Mapping[str, Mapping[str, str]]
        Per budget, parameter values that replace the theorem's defaults (e.g. ``d=8`` at
        paper scale) unless the user sets them.
    seeds : Mapping[str, int]
        Per budget, the default number of seeds.
    phase : callable, optional
        ``phase(params, budget, seeds, device) -> {name: value}``: quantities a sweep measures
        at every grid point, inside the theorem's assumptions or not (a phase diagram).
    overlay : callable, optional
        ``overlay(ax, x_name, y_name)`` draws the theorem's boundary on a sweep heatmap.
    """

    stages: tuple[Stage, ...]
    defaults: Mapping[str, Mapping[str, str]]
    seeds: Mapping[str, int]
    phase: Callable[..., dict[str, float]] | None = None
    overlay: Callable[..., None] | None = None

    def budget_defaults(self, budget: str) -> Mapping[str, str]:
        """Parameter defaults of ``budget``."""
        return self.defaults.get(budget, {})

    def default_seeds(self, budget: str) -> int:
        """Number of seeds used when ``--seeds`` is not given."""
        return self.seeds[budget]


def divergence(history: History, label: str) -> list[Check]:
    """A failed training check naming the step where the loss became NaN/inf (else nothing)."""
    if history.nonfinite_step is None:
        return []
    return [Check(f"{label}: training diverged", "training", "finite loss",
                  f"non-finite loss at step {history.nonfinite_step}", "~", None, False,
                  details={"step": history.nonfinite_step})]


def experiment_for(theorem_id: str) -> Experiment:
    """The experiment registered for ``theorem_id`` (one table per paper module)."""
    from verify.experiments import ical, markov, ntp, topics

    return {**markov.EXPERIMENTS, **ical.EXPERIMENTS, **topics.EXPERIMENTS,
            **ntp.EXPERIMENTS}[theorem_id]
