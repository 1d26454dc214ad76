"""What the papers claim: the core types of the theorem layer (sympy only, never torch).

Each paper's theorems live in their own module (:mod:`theorems.markov`, ...); which papers are
installed is the business of :mod:`verify.registry`, not of this package.
"""

from theorems.core import (
    Obligation,
    ObligationResult,
    Parameter,
    ParameterError,
    Params,
    ParamValue,
    Prediction,
    Theorem,
    TheoremError,
    UnknownTheoremError,
)

__all__ = [
    "Obligation",
    "ObligationResult",
    "ParamValue",
    "Parameter",
    "ParameterError",
    "Params",
    "Prediction",
    "Theorem",
    "TheoremError",
    "UnknownTheoremError",
]
