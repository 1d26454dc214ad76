"""What the papers claim: the theorem registry and its core types (sympy only, never torch)."""

from theorems import ical as _ical  # noqa: F401  (registers the ICAL theorems)
from theorems import markov as _markov  # noqa: F401  (registers the Markov theorems)
from theorems import ntp as _ntp  # noqa: F401  (registers the next-token-prediction theorems)
from theorems import topics as _topics  # noqa: F401  (registers the topic theorems)
from theorems.core import (
    Obligation,
    ObligationResult,
    Parameter,
    ParameterError,
    Prediction,
    Theorem,
    TheoremError,
    UnknownTheoremError,
    get,
    ids,
)

__all__ = [
    "Obligation",
    "ObligationResult",
    "Parameter",
    "ParameterError",
    "Prediction",
    "Theorem",
    "TheoremError",
    "UnknownTheoremError",
    "get",
    "ids",
]
