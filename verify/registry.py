"""Which papers are installed: discovery through the ``transformer_theorems.papers`` entry points.

A distribution declares a paper in its ``pyproject.toml``::

    [project.entry-points."transformer_theorems.papers"]
    ridge = "ridge_theorems.paper:PAPER"

where ``PAPER`` is a :class:`~verify.records.Paper` (or a tuple of them, in the order to show).
This package declares its own four papers the same way, so the built-in papers travel the very
path a plugin does. Discovery imports the registration modules only (sympy, no torch); an
experiment module is imported when its theorem runs (:meth:`Registry.experiment`).

A broken plugin (import error, a malformed record, an id another paper already has) is left
out with one line naming its distribution (:attr:`Registry.problems`); the other papers work.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata

from theorems.core import Theorem, TheoremError, UnknownTheoremError
from verify.records import BUDGETS, Experiment, Paper, TheoremEntry

#: The entry-point group a distribution declares its papers under.
ENTRY_POINT_GROUP = "transformer_theorems.papers"
#: This distribution; its papers load first, so a plugin cannot shadow a built-in id.
HOME_DISTRIBUTION = "transformer-theorems"
_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")


class RegistrationError(TheoremError):
    """A registration that cannot be used (e.g. a theorem whose experiment cannot be imported):
    a usage error, exit code 2."""


@dataclass(frozen=True)
class Registered:
    """A theorem entry with the paper and distribution that registered it."""

    paper: Paper
    entry: TheoremEntry
    distribution: str


def validate(paper: object) -> list[str]:
    """What is malformed about a registration (empty when it can be used); never raises."""
    try:
        return _problems(paper)
    except Exception as exc:  # noqa: BLE001  (a malformed record must not stop discovery)
        return [f"malformed registration ({type(exc).__name__}: {exc})"]


def _problems(paper: object) -> list[str]:
    if not isinstance(paper, Paper):
        return [f"expected a verify.records.Paper, got {type(paper).__name__}"]
    problems = []
    for name in ("key", "title", "prefix", "setting", "bibtex"):
        if not isinstance(getattr(paper, name), str) or not getattr(paper, name).strip():
            problems.append(f"paper field {name!r} must be a non-empty string")
    if not isinstance(paper.year, int):
        problems.append("paper field 'year' must be an integer")
    if (not isinstance(paper.authors, tuple) or not paper.authors
            or not all(isinstance(a, str) and a.strip() for a in paper.authors)):
        problems.append("paper field 'authors' must be a non-empty tuple of names")
    if not isinstance(paper.notation, tuple) or not all(
            isinstance(row, tuple) and len(row) == 2 and all(isinstance(x, str) for x in row)
            for row in paper.notation):
        problems.append("paper field 'notation' must be a tuple of (symbol, meaning) strings")
    if not isinstance(paper.theorems, tuple) or not paper.theorems:
        return [*problems, f"paper {paper.key!r} must register a non-empty tuple of theorems"]
    for entry in paper.theorems:
        if not isinstance(entry, TheoremEntry) or not isinstance(entry.theorem, Theorem):
            problems.append(f"paper {paper.key!r}: each theorem must be a TheoremEntry "
                            "holding a theorems.Theorem")
            continue
        theorem_id = entry.theorem.id
        if (not isinstance(theorem_id, str) or not _ID.match(theorem_id)
                or not theorem_id.startswith(f"{paper.prefix}-")):
            problems.append(f"theorem id {theorem_id!r} is not kebab-case with the paper's "
                            f"prefix {paper.prefix!r}")
            continue
        if not isinstance(entry.experiment, str) or not _REFERENCE.match(entry.experiment):
            problems.append(f"{theorem_id}: experiment {entry.experiment!r} is not "
                            "'module:attribute'")
        for field_name in ("defaults", "seeds", "costs"):
            if not isinstance(getattr(entry, field_name), Mapping):
                problems.append(f"{theorem_id}: {field_name} must be a mapping by budget")
        if isinstance(entry.seeds, Mapping):
            for budget in BUDGETS:
                seeds = entry.seeds.get(budget)
                if not isinstance(seeds, int) or seeds < 1:
                    problems.append(f"{theorem_id}: no default number of seeds for budget "
                                    f"{budget!r}")
    return problems


class Registry:
    """The installed papers and their theorems, in load order.

    Parameters
    ----------
    papers : iterable of (distribution name, Paper)
        Registrations in the order they win: a later paper whose theorem id or citation key is
        already taken is left out, with a line in :attr:`problems`.
    problems : iterable of str
        Lines about registrations that could not even be loaded.
    """

    def __init__(self, papers: Iterable[tuple[str, object]],
                 problems: Iterable[str] = ()) -> None:
        self.problems: list[str] = list(problems)
        self._papers: list[Paper] = []
        self._by_id: dict[str, Registered] = {}
        for distribution, paper in papers:
            issues = validate(paper)
            if not issues:
                assert isinstance(paper, Paper)
                taken = [e.theorem.id for e in paper.theorems if e.theorem.id in self._by_id]
                if taken:
                    issues = [f"theorem id {', '.join(taken)} is already registered by "
                              f"{self._by_id[taken[0]].distribution}"]
                elif any(p.key == paper.key for p in self._papers):
                    issues = [f"paper key {paper.key!r} is already registered"]
                elif any(p.prefix == paper.prefix for p in self._papers):
                    issues = [f"id prefix {paper.prefix!r} is already a registered paper's"]
            if issues:
                self.problems.append(f"plugin {distribution}: {'; '.join(issues)}; its papers "
                                     "are left out")
                continue
            assert isinstance(paper, Paper)
            self._papers.append(paper)
            for entry in paper.theorems:
                self._by_id[entry.theorem.id] = Registered(paper, entry, distribution)

    @classmethod
    def discover(cls) -> Registry:
        """Every paper declared under :data:`ENTRY_POINT_GROUP` by an installed distribution."""
        points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                        key=lambda ep: (_distribution(ep) != HOME_DISTRIBUTION,
                                        _distribution(ep), ep.name))
        loaded, problems = [], []
        for point in points:
            try:
                value = point.load()
                papers = value if isinstance(value, tuple | list) else (value,)
                loaded += [(_distribution(point), paper) for paper in papers]
            except Exception as exc:  # noqa: BLE001  (a broken plugin must not stop the others)
                problems.append(f"plugin {_distribution(point)}: cannot load {point.value} "
                                f"({type(exc).__name__}: {exc}); its papers are left out")
        return cls(loaded, problems)

    def papers(self) -> tuple[Paper, ...]:
        """Registered papers, built-in first."""
        return tuple(self._papers)

    def ids(self) -> list[str]:
        """Theorem ids, paper by paper in each paper's order."""
        return list(self._by_id)

    def registered(self, theorem_id: str) -> Registered:
        """The registration of ``theorem_id``.

        Raises
        ------
        UnknownTheoremError
            With the closest registered ids in the message.
        """
        try:
            return self._by_id[theorem_id]
        except KeyError:
            close = difflib.get_close_matches(str(theorem_id), list(self._by_id), n=3,
                                              cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see `verify --list`"
            raise UnknownTheoremError(f"unknown theorem id {theorem_id!r}{hint}") from None

    def entry(self, theorem_id: str) -> TheoremEntry:
        """The :class:`TheoremEntry` of ``theorem_id``."""
        return self.registered(theorem_id).entry

    def theorem(self, theorem_id: str) -> Theorem:
        """The :class:`theorems.Theorem` of ``theorem_id``."""
        return self.registered(theorem_id).entry.theorem

    def paper_of(self, theorem_id: str) -> Paper:
        """The paper that registered ``theorem_id``."""
        return self.registered(theorem_id).paper

    def experiment(self, theorem_id: str) -> Experiment:
        """Import and return the experiment of ``theorem_id`` (this may load torch).

        Raises
        ------
        RegistrationError
            When the module cannot be imported or does not hold an :class:`Experiment` under
            the registered name.
        """
        registered = self.registered(theorem_id)
        module_name, _, attribute = registered.entry.experiment.partition(":")
        where = f"{theorem_id} (registered by {registered.distribution})"
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001  (reported as a usage error, not a traceback)
            raise RegistrationError(f"{where}: cannot import its experiment module "
                                    f"{module_name} ({type(exc).__name__}: {exc})") from None
        experiment = getattr(module, attribute, None)
        if not isinstance(experiment, Experiment):
            raise RegistrationError(f"{where}: {registered.entry.experiment} is not an "
                                    "Experiment (no experiment is registered for it)")
        return experiment


def _distribution(point: metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return dist.name if dist is not None else "an unknown distribution"


@cache
def default() -> Registry:
    """The registry of this process (discovered once, on first use)."""
    return Registry.discover()


def ids() -> list[str]:
    """Theorem ids of this process's registry (:func:`default`)."""
    return default().ids()


def entry(theorem_id: str) -> TheoremEntry:
    """The :class:`TheoremEntry` of ``theorem_id`` in this process's registry."""
    return default().entry(theorem_id)


def theorem(theorem_id: str) -> Theorem:
    """The :class:`theorems.Theorem` of ``theorem_id`` in this process's registry."""
    return default().theorem(theorem_id)


def experiment(theorem_id: str) -> Experiment:
    """The experiment of ``theorem_id`` in this process's registry (imports it)."""
    return default().experiment(theorem_id)
