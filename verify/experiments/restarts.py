"""Restarts of a training that may not reach the global minimum (spurious minima, or a saddle
left only after a long time): every seed's run, then runs from fresh initialisations until one
reaches the global minimum or the number of runs reaches its cap.

Torch-free: the paper's registration reads the cap for its cost estimate before any work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

Model = TypeVar("Model")

#: Trigonometric PE (Sander et al., 2024, orthogonal case): the loss has spurious minima, and
#: from the small init one run reaches the global minimum only some of the time (measured on the
#: exact loss, 1500 Adam steps: 8 of 16 runs at d = 4, H = 2, T = 8; 1 of 10 at d = 6, H = 3,
#: T = 6, the others in three spurious minima at last-row losses 0.58, 0.86 and 0.91; 5 of 16 at
#: d = 8, H = 4, T = 6). The theorem is about the global minimum, not about which minimum one
#: run finds, so runs restart until one reaches it, up to this many runs in all (at 1 in 10 per
#: run, all 32 miss with probability 3%).
PE_MAX_RUNS = 32
#: Orthogonal heads (gradient descent from the small balanced init): the time to leave the saddle
#: at 0 has a heavy tail at the smallest sizes. Steps to a summed-row loss of 1e-6 (step 2e-3,
#: 6 seeds at each of T = 2, 4, 8, 12): 300 to 3059 at d = 3, 4, 6, 8, but 718 to 23454 at
#: d = 2 (4 of 24 runs above 6000). The theorem is about the minimum the flow reaches, so a run
#: stops there and gets this many times the budget's steps to get there ...
HEADS_STEP_FACTOR = 4
#: ... and a seed whose run has not reached it restarts from a fresh balanced init, up to this
#: many runs per seed (at 4 in 24 runs too slow at d = 2, all three are with probability 0.5%).
HEADS_MAX_RUNS = 3
#: Unbalanced inits per seed of the orthogonal-heads control, drawn while the heads of the last
#: one end orthogonal within the tolerance (at d = 2 one draw in eight did, so all three with
#: probability 0.2%; see ``verify.experiments.ical``).
HEADS_CONTROL_DRAWS = 3
#: A control run whose step was halved gets twice the steps per halving (the same stretch of
#: the flow), up to this factor (measured: at most two halvings at d <= 8, T <= 12).
HEADS_CONTROL_STEP_GROWTH = 4


def restart_schedule(seeds: Sequence[int], finished: Sequence[object],
                     reached: Callable[[object], bool], max_runs: int
                     ) -> Iterator[tuple[int, int]]:
    """``(seed, restart)`` of each run: every seed's run (restart 0), then, while no run in
    ``finished`` (which the caller extends after each run) has ``reached`` the goal, restarts
    ``1, 2, ...`` of each seed in turn, up to ``max_runs`` runs in all (at least the seeds').

    A restart ``k`` draws its initialisation from its seed's stream ``init-restart-k``, so every
    run is reproducible from its ``(seed, restart)``.
    """
    yield from ((seed, 0) for seed in seeds)
    restart = 0
    while seeds and len(finished) < max_runs:
        restart += 1
        for seed in seeds:
            if len(finished) >= max_runs or any(reached(run) for run in finished):
                return
            yield seed, restart


def seed_runs(seed: int, run: Callable[[int], tuple[Model, Any, dict]],
              reached: Callable[[dict], bool], max_runs: int
              ) -> tuple[Model, Any, int, list[dict]]:
    """One seed's runs along :func:`restart_schedule`: ``run(restart)`` trains one and returns
    its model, its history (``nonfinite_step`` set where it diverged) and its record. The runs
    stop at the first whose record has ``reached`` the goal, at a diverged run, or after
    ``max_runs``. Returns the last run's model, history and restart, and the records of the
    runs that finished (each with its ``restart``)."""
    records: list[dict] = []
    for _, restart in restart_schedule([seed], records, reached, max_runs):
        model, history, record = run(restart)
        if history.nonfinite_step is not None:
            break
        records.append({"restart": restart, **record})
    return model, history, restart, records
