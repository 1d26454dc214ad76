"""The Python API: what ``import verify`` offers, and what the ``verify`` command is a layer over.

Examples
--------
>>> import verify
>>> [t["id"] for t in verify.list_theorems()][:2]
['markov-global-minima', 'markov-local-minima']
>>> plan = verify.prepare("markov-local-minima", p="7/10", q="3/5")
>>> plan.params["p"], plan.seeds
(7/10, (0,))

``verify.check("markov-local-minima", p="7/10", q="3/5", seeds=3)`` then trains and returns a
:class:`~verify.records.Verdict` (a table in a terminal or a notebook; ``to_records()`` for a
data frame; ``figures()`` for the curves).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from verify.records import Budget, Plan, ProgressFactory, Verdict

if TYPE_CHECKING:  # the registry and the harness load sympy: imported where they are used,
    # so that ``import verify`` (and the command's Ctrl-C handling, installed after it) is quick
    from verify.registry import Registry


def _registry(registry: Registry | None) -> Registry:
    from verify import registry as registries

    return registry if registry is not None else registries.default()


def list_theorems(registry: Registry | None = None) -> list[dict[str, str]]:
    """Every registered theorem: ``id``, ``kind``, ``title``, ``paper`` (short citation),
    ``citation_key`` and ``place`` (where in the paper), in the papers' order."""
    reg = _registry(registry)
    rows = []
    for theorem_id in reg.ids():
        theorem, paper = reg.theorem(theorem_id), reg.paper_of(theorem_id)
        _, _, place = theorem.paper.partition(", ")
        rows.append({"id": theorem_id, "kind": theorem.kind, "title": theorem.title,
                     "paper": paper.citation(), "citation_key": paper.key, "place": place})
    return rows


def prepare(theorem_id: str, *, budget: Budget = "fast", seeds: int | None = None,
            params: Mapping[str, Any] | None = None, allow_expensive: bool = False,
            registry: Registry | None = None, **kwargs: Any) -> Plan:
    """Validate a request without running anything (and without importing torch).

    Parameters are given as keywords (``p="7/10"``) or in ``params`` (for a name that clashes
    with an argument of this function). Strings are parsed exactly; a float is read through its
    decimal text (``0.7`` is ``7/10``).

    A request whose estimated cost (declared by its paper) exceeds the budget's limit is
    refused unless ``allow_expensive``.

    Raises
    ------
    theorems.TheoremError
        Unknown id (with the closest ids), unknown or malformed parameter, a violated
        assumption, a bad budget or number of seeds, a cost beyond the budget's limit.
    """
    from verify import harness

    entry = _registry(registry).entry(theorem_id)
    return harness.prepare(entry, {**(params or {}), **kwargs}, budget, seeds,
                           allow_expensive)


def run(plan: Plan, *, device: Any = "auto", progress: ProgressFactory | None = None,
        cache: MutableMapping[Any, Any] | None = None,
        registry: Registry | None = None) -> Verdict:
    """Run a prepared plan: obligations, then its registered experiment on ``device``.

    ``device`` is ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``. ``cache`` lets
    several runs of one session share training runs (``verify --all`` passes one).

    Raises
    ------
    verify.registry.RegistrationError
        When the theorem's experiment cannot be imported.
    numerics.device.DeviceUnavailableError
        When ``device`` does not exist here.
    """
    from verify import harness

    experiment = _registry(registry).experiment(plan.theorem.id)
    return harness.run(plan, experiment, resolve_device(device), progress, cache)


def check(theorem_id: str, *, budget: Budget = "fast", seeds: int | None = None,
          device: Any = "auto", params: Mapping[str, Any] | None = None,
          allow_expensive: bool = False, progress: ProgressFactory | None = None,
          registry: Registry | None = None, **kwargs: Any) -> Verdict:
    """Verify one theorem: :func:`prepare`, then :func:`run`.

    Examples
    --------
    ``verify.check("markov-local-minima", p="7/10", q="3/5", seeds=3, device="cpu")``
    """
    plan = prepare(theorem_id, budget=budget, seeds=seeds, params=params,
                   allow_expensive=allow_expensive, registry=registry, **kwargs)
    return run(plan, device=device, progress=progress, registry=registry)


def resolve_device(device: Any) -> Any:
    """A ``torch.device`` from ``"auto" | "cpu" | "cuda"`` or a device (imports torch)."""
    from numerics.device import select_device

    if isinstance(device, str):
        return select_device(device)
    return device


def sweep(theorem_id: str, grid: Mapping[str, Any], *, budget: Budget = "fast",
          seeds: int | None = None, params: Mapping[str, str] | None = None,
          backend: str = "local", workers: int | None = None, address: str | None = None,
          out: Any = None) -> Any:
    """A phase diagram: the theorem's checks at every point of ``grid``.

    ``grid`` maps a parameter to ``"start:stop:num"`` or to a list of values. Results are
    written under ``out`` (default ``sweeps/<id>``) as tasks finish; a re-run resumes. Returns
    a :class:`verify.sweeps.SweepResult` (records, summary, written files).
    """
    from verify import sweeps

    return sweeps.run_sweep(theorem_id, grid, budget=budget, seeds=seeds,
                            fixed=dict(params or {}), backend=backend, workers=workers,
                            address=address, out=out)
