"""Whether they agree: compare a theorem's prediction with real training, under named tolerances.

The Python API (the ``verify`` command is a thin layer over it):

- :func:`check` verifies one theorem and returns a :class:`Verdict` (a table in a terminal or a
  notebook, ``to_records()`` for a data frame, ``figures()`` for its curves);
- :func:`prepare` validates a request without running it, :func:`run` runs a prepared plan;
- :func:`list_theorems` lists the registered theorems, :func:`sweep` runs a phase diagram.

Papers register themselves (:mod:`verify.registry`); their records are in :mod:`verify.records`.
"""

from verify.api import check, list_theorems, prepare, run, sweep
from verify.records import (
    Check,
    Context,
    Curve,
    Experiment,
    Paper,
    Plan,
    Relation,
    Structure,
    TheoremEntry,
    Tolerance,
    Verdict,
)

__all__ = [
    "Check",
    "Context",
    "Curve",
    "Experiment",
    "Paper",
    "Plan",
    "Relation",
    "Structure",
    "TheoremEntry",
    "Tolerance",
    "Verdict",
    "check",
    "list_theorems",
    "prepare",
    "run",
    "sweep",
]
