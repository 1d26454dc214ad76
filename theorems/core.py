"""Core records of the theorem layer: parameters, predictions, proof obligations, theorems.

Everything here is exact (sympy); nothing imports torch. A :class:`Theorem` says what a paper
claims, a :class:`Prediction` holds the exact values the claim fixes, and an :class:`Obligation`
is one step of the proof that sympy checks exactly.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Literal

import mpmath
import sympy as sp

ParamValue = sp.Rational | int | str
Params = Mapping[str, ParamValue]
Relation = Literal["==", ">", ">=", "<", "<=", "psd", "nsd", "indefinite", "spectrum"]

#: Decimal digits of the evaluation that decides the sign of a constant (logs of rationals)
#: when sympy's exact sign rules do not: sympy's evalf tracks its own error at this precision.
SIGN_DIGITS = 50


class TheoremError(ValueError):
    """Base class of the errors a user can cause (bad id, bad parameter); the CLI prints them."""


class UndecidedError(ArithmeticError):
    """sympy could not decide a relation (e.g. the sign of a constant that evaluates to 0)."""


class UnknownTheoremError(TheoremError):
    """A theorem id that no registered paper declares; the message suggests the closest ids."""


class ParameterError(TheoremError):
    """A parameter that the theorem does not have, or a value that cannot be parsed."""


@dataclass(frozen=True)
class Parameter:
    """One parameter of a theorem.

    Attributes
    ----------
    name : str
        Name used on the command line (``--param name=value``).
    kind : {"rational", "integer", "text"}
        Rationals are parsed exactly (``0.7`` becomes ``7/10``) so that obligations stay exact.
        Text values (a partial order, a permutation) are kept as given; the theorem's
        ``assumptions`` say what is wrong with them.
    default : sympy.Rational, int or str
        Value used when the user gives none.
    description : str
        Meaning in the paper's notation.
    """

    name: str
    kind: Literal["rational", "integer", "text"]
    default: ParamValue
    description: str

    def parse(self, text: str) -> ParamValue:
        """Parse a command-line value exactly; raise :class:`ParameterError` if malformed.

        Numbers are read only in ASCII decimal (``0.7``), fraction (``7/10``) and scientific
        (``1e-3``) forms, exactly; digits of other scripts, ``nan``, ``inf`` and ``1/0`` are
        refused, and so are numbers with more than :data:`MAX_DIGITS` digits or an exponent
        beyond :data:`MAX_EXPONENT` (exact arithmetic on them would run for minutes).
        """
        if self.kind == "text":
            return text.strip()
        text = text.strip()
        if len(text) > 2 * MAX_DIGITS:  # before any regular expression or int() sees it
            raise ParameterError(f"parameter {self.name}={_clip(text)!r} has more than "
                                 f"{MAX_DIGITS} digits; give it with fewer digits")
        pattern = _INTEGER if self.kind == "integer" else _RATIONAL
        match = pattern.fullmatch(text)
        if match is None:
            kind = "an integer" if self.kind == "integer" else "a number such as 0.7 or 7/10"
            raise ParameterError(f"parameter {self.name}={_clip(text)!r} is not {kind}")
        mantissa, _, rest = text.lower().partition("e")
        exponent_digits = rest.partition("/")[0]
        digits = (sum(ch.isdigit() for ch in mantissa)
                  + sum(ch.isdigit() for ch in rest.partition("/")[2]))
        if len(exponent_digits.lstrip("+-").lstrip("0")) > 3:
            raise ParameterError(f"parameter {self.name}={_clip(text)!r} has an exponent beyond "
                                 f"±{MAX_EXPONENT}; give it with fewer digits")
        exponent = int(match.group("exp") or 0) if self.kind == "rational" else 0
        if digits > MAX_DIGITS or abs(exponent) > MAX_EXPONENT:
            raise ParameterError(
                f"parameter {self.name}={_clip(text)!r} has more than {MAX_DIGITS} digits or "
                f"an exponent beyond ±{MAX_EXPONENT}; give it with fewer digits")
        if self.kind == "integer":
            return int(text)
        if match.group("den") is not None and int(match.group("den")) == 0:
            raise ParameterError(f"parameter {self.name}={text!r} divides by zero")
        return sp.Rational(text)

    def coerce(self, value: object) -> ParamValue:
        """A value given from Python, made exact.

        Strings are parsed (:meth:`parse`); a float goes through its shortest decimal text
        (``0.7`` is ``7/10``, not the 53-bit binary fraction); ints, fractions and sympy
        rationals are kept exact. Anything else is a :class:`ParameterError`.
        """
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, bool):
            raise ParameterError(f"parameter {self.name}={value!r} is a bool, not a number")
        if self.kind == "text":
            raise ParameterError(f"parameter {self.name} takes text (got {value!r})")
        if isinstance(value, numbers.Integral):
            return self.parse(str(int(value)))
        if isinstance(value, numbers.Real) and not isinstance(value, Fraction | sp.Rational):
            value = float(value)  # numpy floats and the like: through their decimal text
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ParameterError(f"parameter {self.name}={value!r} is not a finite number")
            if self.kind == "integer" and not value.is_integer():
                raise ParameterError(f"parameter {self.name}={value!r} is not an integer")
            return self.parse(repr(int(value)) if self.kind == "integer" else repr(value))
        if isinstance(value, int | Fraction | sp.Rational):
            return self.parse(str(value))
        raise ParameterError(f"parameter {self.name}={value!r}: give a number or its text "
                             f"(got {type(value).__name__})")


def _clip(text: str, limit: int = 40) -> str:
    """A value short enough to echo in a one-line error."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Decimal, fraction and scientific forms, ASCII digits only.
_RATIONAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE](?P<exp>[+-]?\d+))?"
                       r"(?:/(?P<den>[+-]?\d+))?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
#: Longest exact number accepted from the user (digits in all).
MAX_DIGITS = 40
#: Largest decimal exponent accepted from the user (``1e-400`` would be a 400-digit rational).
MAX_EXPONENT = 30


@dataclass(frozen=True)
class Prediction:
    """What a theorem says optimisation reaches: closed forms and their exact values.

    Attributes
    ----------
    closed_forms : Mapping[str, sympy.Expr]
        Named closed forms in the theorem's symbols (a loss, a bias, a slope).
    point : Mapping[sympy.Symbol, sympy.Rational]
        The parameter values the prediction is made at.
    spectra : Mapping[str, tuple[tuple[sympy.Expr, int], ...]]
        Named eigenvalue multisets as ``(closed form, multiplicity)`` pairs; eigenvalues not
        listed are zero (the dimension is the model's, known only to the numeric side).
    descriptions : Mapping[str, str]
        One line per name saying what the value is.
    """

    closed_forms: Mapping[str, sp.Expr]
    point: Mapping[sp.Symbol, sp.Rational]
    spectra: Mapping[str, tuple[tuple[sp.Expr, int], ...]] = field(default_factory=dict)
    descriptions: Mapping[str, str] = field(default_factory=dict)

    def value(self, name: str) -> sp.Expr:
        """Exact value of the closed form ``name`` at :attr:`point` (simplified where sympy
        can without building integers too long to handle)."""
        return _simplify(sp.sympify(self.closed_forms[name]).subs(self.point))

    def float(self, name: str) -> float:
        """Float view of :meth:`value` (for comparison with measurements), evaluated at
        :attr:`point` without simplifying first (sympy's adaptive precision makes 30 digits
        exact ones)."""
        return float(sp.N(sp.sympify(self.closed_forms[name]).subs(self.point), 30))

    def spectrum_floats(self, name: str) -> list[tuple[float, int]]:
        """Float view of the spectrum ``name`` at :attr:`point` as ``(eigenvalue, mult)``."""
        return [(float(sp.N(sp.sympify(v).subs(self.point), 30)), m) for v, m in self.spectra[name]]

    def as_floats(self) -> dict[str, float]:
        """All closed forms as floats at :attr:`point`."""
        return {name: self.float(name) for name in self.closed_forms}


@dataclass(frozen=True)
class ObligationResult:
    """Outcome of checking one obligation.

    Attributes
    ----------
    holds : bool
        Whether the relation holds.
    method : str
        ``"symbolic"`` when it holds for all parameters, or ``"exact at p=1/2, q=4/5"`` when
        it was decided in exact arithmetic at the admissible point.
    value : str
        The decisive quantity (the simplified difference, or the exact eigenvalues).
    """

    holds: bool
    method: str
    value: str


@dataclass(frozen=True)
class Obligation:
    """One step of a proof that sympy checks exactly.

    Attributes
    ----------
    name : str
        Short description in the paper's words ("dL/db = 0 at theta_pi").
    lhs : sympy.Basic or sympy.ImmutableMatrix
        Expression in the theorem's symbols.
    relation : Relation
        ``==``, ``>``, ``>=``, ``<``, ``<=`` compare ``lhs`` with ``rhs``; ``psd``, ``nsd`` and
        ``indefinite`` are properties of the symmetric matrix ``lhs``; ``spectrum`` says the
        eigenvalues of ``lhs`` are the pairs ``(value, multiplicity)`` in ``rhs`` (proved via the
        characteristic polynomial).
    rhs : sympy.Basic or tuple
        Right-hand side (``0`` by default).
    point : Mapping[sympy.Symbol, sympy.Rational]
        An admissible exact point: where ``==`` cannot be simplified in general, and for every
        inequality or definiteness claim (which only hold under the assumptions), the relation
        is decided there in exact arithmetic. Only the symbols that occur in the relation are
        substituted, and only those are named in the method line.
    uses : tuple[str, ...]
        The closed forms of the prediction the obligation is built from (so a wrong closed
        form makes it fail, and the report says which value it tests).
    sizes : Mapping[str, int]
        The theorem parameters (sizes) the objects were built at (e.g. ``{"d": 3, "T": 4}``
        for a moment expansion over concrete matrices); empty when nothing is built at a
        concrete size. The method line names them; where they differ from the requested
        parameters the verdict says so in a separate note.
    scope : str
        When :attr:`sizes` can differ from the request: why, and what covers the requested
        size (a general argument, or the cost that prevents it).
    """

    name: str
    lhs: sp.Basic
    relation: Relation
    point: Mapping[sp.Symbol, sp.Rational]
    rhs: sp.Basic | tuple[tuple[sp.Expr, int], ...] = sp.Integer(0)
    uses: tuple[str, ...] = ()
    sizes: Mapping[str, int] = field(default_factory=dict)
    scope: str = ""

    def free_symbols(self) -> set[sp.Symbol]:
        """The symbols that occur in the relation (left side and right side)."""
        sides = [self.lhs, *(v for v, _ in self.rhs)] if self.relation == "spectrum" else [
            self.lhs, self.rhs]
        return set().union(*(sp.sympify(side).free_symbols for side in sides))

    def substituted(self) -> dict[sp.Symbol, sp.Rational]:
        """The part of :attr:`point` that the relation actually uses."""
        free = self.free_symbols()
        return {symbol: value for symbol, value in self.point.items() if symbol in free}

    def method(self, symbolic: bool) -> str:
        """The method line: ``symbolic`` or ``exact at p=1/2``, then ``, built at d=3`` when
        the objects were built at :attr:`sizes` (what was substituted, nothing else)."""
        at = self.substituted()
        if symbolic or not at:
            text = "symbolic" if symbolic else "exact (a constant)"
        else:
            text = "exact at " + ", ".join(f"{s}={v}" for s, v in at.items())
        if self.sizes:
            text += ", built at " + ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return text

    def check(self) -> ObligationResult:
        """Decide the relation exactly (see :class:`ObligationResult`).

        A relation sympy cannot decide is reported as not holding, with the reason.
        """
        try:
            return self._decide()
        except UndecidedError as exc:
            return ObligationResult(False, self.method(False), f"undecided: {exc}")

    def _decide(self) -> ObligationResult:
        where = self.method(False)
        if self.relation == "==":
            difference = sp.sympify(self.lhs - self.rhs)
            if (witness := _nonzero_at(difference, self.point)) is not None:
                return ObligationResult(False, where, witness)
            if _is_zero_symbolic(difference):
                return ObligationResult(True, self.method(True), "0")
            at_point = _simplify(difference.subs(self.point))
            return ObligationResult(_is_zero_symbolic(at_point), where, shown(at_point))
        if self.relation == "spectrum":
            return self._check_spectrum(where)
        if self.relation in ("psd", "nsd", "indefinite"):
            return self._check_definiteness(where)
        difference = sp.sympify(self.lhs - self.rhs).subs(self.point)
        if difference.free_symbols:  # a constant's sign needs no simplification (and sympy's
            difference = _simplify(difference)  # can build huge integers from logs)
        sign = _sign(difference)
        holds = {
            ">": sign > 0,
            ">=": sign >= 0,
            "<": sign < 0,
            "<=": sign <= 0,
        }[self.relation]
        return ObligationResult(holds, where, f"lhs - rhs = {shown(difference)}")

    def _check_definiteness(self, where: str) -> ObligationResult:
        """Signs of the eigenvalues of a symmetric matrix at the point.

        First at :data:`SIGN_DIGITS` digits: the eigenvalues of a symmetric matrix move by at
        most the norm of a perturbation, so when every one is far from 0 at that precision
        its sign is certain. Eigenvalues at (or near) 0 are decided exactly by sympy.
        """
        matrix = sp.ImmutableMatrix(self.lhs).subs(self.point)
        rule = {"psd": lambda signs: signs <= {0, 1}, "nsd": lambda signs: signs <= {0, -1},
                "indefinite": lambda signs: {-1, 1} <= signs}[self.relation]
        if not matrix.free_symbols:
            with mpmath.workdps(SIGN_DIGITS):
                numeric = mpmath.matrix(matrix.evalf(SIGN_DIGITS).tolist())
                values = mpmath.eigsy(numeric, eigvals_only=True)
                clear = mpmath.mpf(10) ** (10 - SIGN_DIGITS) * max(1, mpmath.mnorm(numeric, 1))
                if all(abs(v) > clear for v in values):
                    signs = {1 if v > 0 else -1 for v in values}
                    listed = ", ".join(mpmath.nstr(v, 6) for v in values)
                    return ObligationResult(rule(signs), where + f" (eigenvalues at "
                                            f"{SIGN_DIGITS} digits, all clear of 0)",
                                            "eigenvalues " + listed)
        eigenvalues = matrix.applyfunc(_simplify).eigenvals()
        signs = {_sign(value) for value in eigenvalues}
        listed = ", ".join(f"{shown(v)} (x{m})" for v, m in eigenvalues.items())
        return ObligationResult(rule(signs), where, "eigenvalues " + listed)

    def _check_spectrum(self, where: str) -> ObligationResult:
        lam = sp.Symbol("lambda")
        matrix = sp.ImmutableMatrix(self.lhs)
        claimed = sp.Mul(*[(lam - value) ** mult for value, mult in self.rhs])
        zeros = matrix.shape[0] - sum(mult for _, mult in self.rhs)
        if zeros < 0:
            return ObligationResult(False, where, f"more eigenvalues claimed than the "
                                    f"{matrix.shape[0]} rows of the matrix")
        numeric = matrix.subs(self.point)
        if not numeric.free_symbols:  # a wrong spectrum fails at once, numerically
            numeric = numeric.evalf(SIGN_DIGITS)
            gap = sp.Poly(numeric.charpoly(lam).as_expr()
                          - sp.expand(claimed * lam**zeros).subs(self.point), lam)
            if (witness := _nonzero_at(sp.Matrix(gap.all_coeffs()), {})) is not None:
                return ObligationResult(False, where, "characteristic polynomial " + witness)
        difference = matrix.charpoly(lam).as_expr() - claimed * lam**zeros
        listed = ", ".join(f"{v} (x{m})" for v, m in self.rhs)
        if zeros:
            listed += f", 0 (x{zeros})"
        if _is_zero_symbolic(difference):
            return ObligationResult(True, self.method(True), "eigenvalues " + listed)
        at_point = sp.expand(_simplify(difference.subs(self.point)))
        return ObligationResult(_is_zero_symbolic(at_point), where, "eigenvalues " + listed)


#: Longest exact text an obligation's result shows; longer values are shown as a float.
SHOWN_CHARACTERS = 200


def shown(value: sp.Basic) -> str:
    """An exact value as text, or its 15-digit float view when the exact text is huge (sympy's
    simplification of logs of rationals can build integers of thousands of digits)."""
    try:
        text = str(value)
    except ValueError:  # an integer beyond Python's int-to-str limit
        text = None
    if text is not None and len(text) <= SHOWN_CHARACTERS:
        return text
    try:
        return f"{sp.N(value, 15)} (exact form too long to show)"
    except (TypeError, ValueError):
        return "(exact form too long to show)"


#: A number with logarithms is left as it is (it is exact already) when it has more than
#: :data:`SIMPLIFY_MAX_LOGS` of them or a rational whose numerator or denominator is larger than
#: :data:`SIMPLIFY_MAX_INTEGER`: ``simplify`` runs ``logcombine`` on it, which raises
#: rationals to rational powers and factors the resulting integers (minutes for the 4
#: logarithms of the first-order rate of an order-3 chain, whose stationary law has six-digit
#: denominators). First-order entropy rates at parameters of a few digits have 4 logarithms.
SIMPLIFY_MAX_LOGS = 4
SIMPLIFY_MAX_INTEGER = 10**4


def _too_costly_to_simplify(expr: sp.Basic) -> bool:
    if expr.free_symbols or not (logs := expr.atoms(sp.log)):
        return False
    largest = max((max(abs(r.p), r.q) for r in expr.atoms(sp.Rational)), default=1)
    return len(logs) > SIMPLIFY_MAX_LOGS or largest > SIMPLIFY_MAX_INTEGER


@lru_cache(maxsize=4096)
def _simplify(expr: sp.Basic) -> sp.Basic:
    """``sympy.simplify`` with memoisation: obligations are re-checked for many points.

    When simplification builds an integer too long to handle (it can, from logs of
    rationals), the expression is returned as it was; so is a number with many logarithms or
    long rationals (:data:`SIMPLIFY_MAX_LOGS`, :data:`SIMPLIFY_MAX_INTEGER`).
    """
    if _too_costly_to_simplify(expr):
        return expr
    try:
        return sp.simplify(expr)
    except ValueError:
        return expr


def _nonzero_at(difference: sp.Basic, point: Mapping[sp.Symbol, sp.Rational]) -> str | None:
    """A proof that ``difference`` is not zero at ``point``, or None.

    Evaluated at :data:`SIGN_DIGITS` digits (sympy tracks the error of its evaluation), an
    entry whose magnitude is far above the working precision is certainly nonzero; this
    decides a wrong identity at once, before any simplification (which can take minutes on
    the expression a wrong closed form produces).
    """
    entries = list(difference) if isinstance(difference, sp.MatrixBase) else [difference]
    for entry in entries:
        value = sp.sympify(entry).subs(point)
        if value.free_symbols:
            return None
        try:
            number = sp.N(value, SIGN_DIGITS)
        except (TypeError, ValueError):
            return None
        if not number.is_number:
            return None
        if abs(number) > sp.Float(10) ** (10 - SIGN_DIGITS):
            return f"nonzero: {sp.N(number, 6)} (evaluated at {SIGN_DIGITS} digits)"
    return None


def _is_zero_symbolic(expr: sp.Basic) -> bool:
    if isinstance(expr, sp.MatrixBase):
        return all(_is_zero_symbolic(entry) for entry in expr)
    # one variable, rational: cancelling over a common denominator proves zero fast (simplify
    # can stall on such identities); anything else goes on to simplify as before
    if (len(expr.free_symbols) <= 1 and expr.is_rational_function()
            and sp.cancel(sp.together(expr)) == 0):
        return True
    return _simplify(sp.expand(expr)) == 0 or _simplify(expr) == 0


def _sign(value: sp.Basic) -> int:
    """Exact sign of a constant; falls back to a ``SIGN_DIGITS``-digit evaluation."""
    if value.is_zero:
        return 0
    if value.is_positive:
        return 1
    if value.is_negative:
        return -1
    if value.free_symbols:
        raise UndecidedError(f"sympy cannot decide the sign of {value} for all values of "
                             f"{sorted(map(str, value.free_symbols))}")
    real, imaginary = sp.N(value, SIGN_DIGITS).as_real_imag()
    # a real number written with complex radicals (the cubic formula's casus irreducibilis)
    # evaluates with a round-off imaginary part far below the working precision
    if abs(imaginary) > sp.Float(10) ** (10 - SIGN_DIGITS) * max(1, abs(real)):
        raise UndecidedError(f"{shown(value)} is not real")
    if real == 0:
        raise UndecidedError(f"cannot decide the sign of {shown(value)}")
    return 1 if real > 0 else -1


@dataclass(frozen=True)
class Theorem:
    """A theorem: statement, assumptions, prediction and proof obligations.

    Attributes
    ----------
    id : str
        Kebab-case id with the paper prefix (``markov-local-minima``).
    title : str
        One line.
    paper : str
        Citation key and the theorem's place in the paper.
    statement : str
        The statement in LaTeX (the project's formulation).
    parameters : tuple[Parameter, ...]
        What the theorem is a statement about (data and model sizes).
    assumption_text : tuple[str, ...]
        The assumptions in words/LaTeX, for the docs and ``--list``.
    assumptions : Callable[[Params], list[str]]
        Readable violations of the assumptions; empty when the parameters are admissible.
    predict : Callable[[Params], Prediction]
        The closed-form prediction.
    obligations : Callable[[Params, Prediction], list[Obligation]]
        The proof steps sympy checks, built from the prediction's own closed forms (never from
        re-typed copies), so that a wrong closed form fails an obligation.
    kind : {"theorem", "empirical"}
        ``empirical`` for claims the paper supports by experiment only.
    """

    id: str
    title: str
    paper: str
    statement: str
    parameters: tuple[Parameter, ...]
    assumption_text: tuple[str, ...]
    assumptions: Callable[[Params], list[str]]
    predict: Callable[[Params], Prediction]
    obligations: Callable[[Params, Prediction], list[Obligation]]
    kind: Literal["theorem", "empirical"] = "theorem"

    def proof(self, params: Params) -> list[Obligation]:
        """The obligations at ``params``, built from the theorem's own prediction there."""
        return self.obligations(params, self.predict(params))

    def default_params(self) -> dict[str, ParamValue]:
        """The default value of every parameter."""
        return {p.name: p.default for p in self.parameters}

    def resolve_params(self, overrides: Mapping[str, object]) -> dict[str, ParamValue]:
        """Defaults updated by ``overrides`` (made exact by :meth:`Parameter.coerce`).

        Raises
        ------
        ParameterError
            If an override names a parameter the theorem does not have or cannot be parsed.
        """
        by_name = {p.name: p for p in self.parameters}
        params = self.default_params()
        for name, value in overrides.items():
            if name not in by_name:
                known = ", ".join(by_name) or "none"
                raise ParameterError(
                    f"{self.id} has no parameter {name!r} (its parameters: {known})"
                )
            params[name] = by_name[name].coerce(value)
        return params
