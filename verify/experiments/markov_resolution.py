"""What the Markov experiments can resolve: the fast budget's loss tolerance, the parameters
where two predicted losses are too close for any training check to tell apart, and how long a
run must be for the bias to reach the trap (:func:`run_steps`).

Torch-free: the paper's registration reads :func:`unresolvable` before any work, so that such a
request is refused with its reason (exit 2) instead of failing after training, and its cost
model counts the runs' lengths. The rule uses
the fast budget's tolerance; the full budget's is data-derived (known only after training), so
there the training's guard check can still fail after the run.
"""

from __future__ import annotations

import math

from theorems.core import Prediction
from verify.records import Tolerance

#: Fast budget: exact population loss, so the gap between the final loss and the predicted one is
#: optimisation error only. Measured after the budget's 1000 full-batch AdamW steps from the
#: paper's init (d = 4, one layer), at 21 points with p, q in [0.01, 0.99] on both sides of
#: p + q = 1 (tied and untied runs that end at the entropy rate, and the stability run from
#: theta_* + noise): 1e-11 to 2e-7, the largest at p, q near 1 (slow curvature directions);
#: two- and three-layer runs at d = 8 end within 3e-7. 1e-5 keeps a factor of 50 above the
#: worst. ``tests/verify/test_tolerance_sizes.py`` re-measures four of those points (the worst
#: among them) and fails if the tolerance is more than :data:`FAST_LOSS_MAX_HEADROOM` times the
#: worst error (loosened beyond its reason) or less than :data:`FAST_LOSS_MIN_HEADROOM` times it
#: (one that would flake). Trapped runs approach H(pi) more slowly than converged runs approach
#: their end point, so the trap is detected in a wider band where the gap allows
#: (:data:`~verify.experiments.markov.PLATEAU_GAP_FRACTION`).
FAST_LOSS = Tolerance(1e-5, "exact population loss: optimisation error after the budget's "
                      "1000 steps (measured at most 2e-7 over p, q in [0.01, 0.99])")
FAST_LOSS_MIN_HEADROOM = 10.0
FAST_LOSS_MAX_HEADROOM = 200.0
#: A training check only discriminates if the two candidate losses (H(pi), entropy rate) are
#: more than two tolerances apart: then their tolerance bands are disjoint and no measurement
#: can pass for both.
SEPARATION_FACTOR = 2.0


#: How far AdamW carries one parameter over the first :data:`BIAS_ARRIVAL` of a Markov run,
#: per step of the run: the sum of the learning rates of those steps (the budgets' one-cycle
#: schedule, peak 2e-3, :class:`numerics.train.TrainConfig`; the sum is proportional to the
#: run's length, since the schedule's phases are fractions of it). An Adam step moves a
#: parameter by about the learning rate while its gradient keeps its sign, so this bounds how
#: far the bias b travels from its initial 0; measured, b travels faster still (2.6 by step
#: 1320 of 2000 at (p, q) = (0.95, 0.07), where the sum is 2.0), so the bound errs on the long
#: side. ``tests/verify/test_markov_controls.py`` recomputes it from the trainer's scheduler.
BIAS_REACH_PER_STEP = 9.5e-4
#: The fraction of a run within which the bias must be able to reach the trap's ``ln(p/q)``:
#: the plateau check needs the trap held for the last 20% of the run at least, and the other
#: weights' approach to it takes some steps more.
BIAS_ARRIVAL = 0.6


def run_steps(steps: int, p: float, q: float) -> int:
    """AdamW steps of a Markov run at ``(p, q)`` in a budget of ``steps``: more where the
    bias cannot reach the unigram point's ``b = ln(p/q)`` in the first :data:`BIAS_ARRIVAL`
    of them (:data:`BIAS_REACH_PER_STEP`).

    The paper's init has ``b = 0``, and a tied run at p + q > 1 reaches the trap (Theorem 2)
    only when ``b`` has got to ``ln(p/q)``: with e = 0 no other weight shifts the logit. At an
    extreme stationary law (``|ln(p/q)|`` above about 0.95) the budgets' 1000 steps ended
    before that, and a tied run at (0.95, 0.07) was still 3e-5 above H(pi) at its last step,
    failing the plateau check of a trap it was falling into. Every run at ``(p, q)`` (tied,
    untied, controls) takes the same length, so runs shared between stages stay the same."""
    return max(steps, math.ceil(abs(math.log(p / q)) / BIAS_REACH_PER_STEP))


def unresolvable(prediction: Prediction) -> list[str]:
    """Why no training check can decide the theorem at ``prediction``'s parameters (empty when
    one can): H(pi) and the entropy rate closer than :data:`SEPARATION_FACTOR` loss tolerances
    (near p + q = 1 the data is almost i.i.d. and the two losses coincide).

    The training's guard check applies the same rule, with the full budget's own tolerance.
    """
    gap = prediction.float("unigram_loss") - prediction.float("entropy_rate")
    least = SEPARATION_FACTOR * FAST_LOSS.atol
    if gap >= least:
        return []
    return [f"H(pi) - entropy rate = {gap:.3g} is below {SEPARATION_FACTOR:g} x the loss "
            f"tolerance ({least:.3g}): near p + q = 1 the chain is almost i.i.d. and training "
            "cannot tell the unigram point from the bigram predictor; choose p, q with "
            "|p + q - 1| further from 0 (the obligations hold for every admissible p, q)"]


def unresolvable_higher_order(prediction: Prediction) -> list[str]:
    """The same rule for a chain of order ``k``: the windowed model's floor ``H_k`` and the
    floor ``H_{k-1}`` of a window one token shorter (the control) must be more than
    :data:`SEPARATION_FACTOR` loss tolerances apart, else neither check can tell them apart."""
    k = max(int(name.removeprefix("rate_")) for name in prediction.closed_forms
            if name.startswith("rate_"))
    gap = prediction.float(f"rate_{k - 1}") - prediction.float(f"rate_{k}")
    least = SEPARATION_FACTOR * FAST_LOSS.atol
    if gap >= least:
        return []
    return [f"H_{k - 1} - H_{k} = {gap:.3g} is below {SEPARATION_FACTOR:g} x the loss "
            f"tolerance ({least:.3g}): the oldest bit of the context barely changes the next "
            "one, so no training check can tell a window of k tokens from one of k - 1; "
            "choose another kernel (or kernel_seed)"]
