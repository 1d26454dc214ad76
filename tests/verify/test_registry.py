"""Papers as plugins: registration, discovery from installed distributions, broken plugins, and
the package boundaries (no import cycle; theorems without torch, numerics without sympy)."""

import ast
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from verify import api, registry
from verify.registry import RegistrationError, Registry

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("theorems", "numerics", "verify")
EXAMPLE = ROOT / "examples" / "ridge-regression"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Our modules that ``path`` imports anywhere (deferred imports too), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and ast.unparse(block.test) == "TYPE_CHECKING"
               for stmt in block.body for node in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    return {name for name in found if name in modules}


def _graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) - {_module_name(p)} for p in files}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_anywhere_in_the_packages():
    graph = _graph()
    assert "verify.harness" in graph and graph["verify.records"] <= {"verify.figures"}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_detector_finds_a_cycle():
    """The detector itself can fail: a deferred import back into the harness is a cycle."""
    graph = _graph()
    graph["verify.records"] = graph["verify.records"] | {"verify.harness"}
    assert _cycle(graph) is not None


def test_the_harness_imports_no_paper():
    reachable, todo = set(), ["verify.harness"]
    graph = _graph()
    while todo:
        for target in graph[todo.pop()] - reachable:
            reachable.add(target)
            todo.append(target)
    assert not {m for m in reachable if m.startswith(("verify.experiments", "verify.papers"))}


def _fresh_python(code: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, cwd=ROOT,
                   timeout=120)


def test_theorems_do_not_load_torch_and_numerics_do_not_load_sympy():
    _fresh_python("""
        import sys
        import theorems, theorems.markov, theorems.ical, theorems.topics, theorems.ntp
        assert "torch" not in sys.modules, "theorems imported torch"
        """)
    _fresh_python("""
        import importlib, pkgutil, sys
        import numerics
        for info in pkgutil.walk_packages(numerics.__path__, "numerics."):
            importlib.import_module(info.name)
        assert "sympy" not in sys.modules, "numerics imported sympy"
        """)


def test_prepare_validates_without_torch():
    _fresh_python("""
        import sys
        import verify
        from theorems import TheoremError
        plan = verify.prepare("markov-local-minima", p="7/10", q="3/5")
        assert str(plan.params["p"]) == "7/10"
        try:
            verify.prepare("markov-local-minima", p=0.2, q=0.3)
        except TheoremError:
            pass
        else:
            raise AssertionError("p+q < 1 accepted")
        verify.list_theorems()
        assert "torch" not in sys.modules, "validation imported torch"
        """)


def _builtin(prefix: str):
    return next(p for p in registry.default().papers() if p.prefix == prefix)


def test_builtin_papers_are_registered_in_order_with_their_theorems():
    papers = registry.default().papers()
    assert [p.prefix for p in papers][:4] == ["markov", "ical", "topics", "ntp"]
    assert not registry.default().problems
    ids = registry.ids()
    assert len(ids) == len(set(ids)) >= 15
    for paper in papers[:4]:
        assert paper.baselines is not None and paper.url.startswith("https://arxiv.org/abs/")
        assert paper.key in paper.bibtex and paper.setting.strip()


def test_a_broken_registration_is_left_out_with_one_line_and_the_others_work():
    markov = _builtin("markov")
    duplicate = dataclasses.replace(markov, key="other2024")
    wrong_prefix = dataclasses.replace(markov, key="x2024", prefix="ical")
    reg = Registry([("transformer-theorems", markov), ("dup-dist", duplicate),
                    ("prefix-dist", wrong_prefix), ("junk-dist", object())])
    assert reg.ids() == [e.theorem.id for e in markov.theorems]
    problems = "\n".join(reg.problems)
    assert len(reg.problems) == 3
    assert "dup-dist" in problems and "already registered by transformer-theorems" in problems
    assert "prefix-dist" in problems and "prefix 'ical'" in problems
    assert "junk-dist" in problems and "expected a verify.records.Paper" in problems


def test_malformed_records_are_reported_not_raised():
    markov = _builtin("markov")
    entry = markov.theorems[0]
    broken = [dataclasses.replace(markov, theorems=None),
              dataclasses.replace(markov, authors=("",)),
              dataclasses.replace(markov, theorems=(dataclasses.replace(entry, seeds=5),)),
              dataclasses.replace(markov, theorems=(dataclasses.replace(entry, experiment=None),)),
              dataclasses.replace(markov, theorems=entry),
              dataclasses.replace(markov, notation=(("p", 1),))]
    reg = Registry([(f"dist-{i}", paper) for i, paper in enumerate(broken)])
    assert reg.ids() == [] and len(reg.problems) == len(broken)
    assert all(f"dist-{i}" in line for i, line in enumerate(reg.problems))


def test_a_missing_experiment_is_a_usage_error(capsys, monkeypatch):
    markov = _builtin("markov")
    entry = dataclasses.replace(markov.theorems[0], experiment="no_such_module:EXPERIMENT")
    broken = dataclasses.replace(markov, theorems=(entry,))
    reg = Registry([("broken-dist", broken)])
    with pytest.raises(RegistrationError, match="broken-dist.*cannot import"):
        reg.experiment(entry.theorem.id)
    monkeypatch.setattr(registry, "default", lambda: reg)
    from verify.cli import main

    code = main(["--theorem", entry.theorem.id])
    err = capsys.readouterr().err
    assert code == 2 and "no_such_module" in err and len(err.strip().splitlines()) == 1


def _fake_distribution(site: Path, name: str, entry_points: str, modules: dict[str, str]):
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[transformer_theorems.papers]\n{entry_points}\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def test_installed_plugins_are_discovered_and_broken_ones_reported(tmp_path):
    """Real discovery through importlib.metadata: a working plugin, one whose module fails to
    import, and one that reuses a built-in id."""
    site = tmp_path / "site"
    _fake_distribution(site, "working-plugin", "fake = working_plugin:PAPER", {
        "working_plugin": """
            import dataclasses
            from verify.papers import MARKOV
            entry = dataclasses.replace(MARKOV.theorems[1], theorem=dataclasses.replace(
                MARKOV.theorems[1].theorem, id="fake-local-minima"))
            PAPER = dataclasses.replace(MARKOV, key="fake2024", prefix="fake", theorems=(entry,))
            """})
    _fake_distribution(site, "broken-plugin", "broken = broken_plugin:PAPER",
                       {"broken_plugin": "raise ImportError('missing dependency foo')\n"})
    _fake_distribution(site, "copycat-plugin", "copy = copycat_plugin:PAPER", {
        "copycat_plugin": """
            import dataclasses
            from verify.papers import MARKOV
            PAPER = dataclasses.replace(MARKOV, key="copycat2024")
            """})
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-m", "verify", "--list"], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    warnings = out.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("verify: warning: plugin ") for w in warnings)
    assert any("broken-plugin" in w and "missing dependency foo" in w for w in warnings)
    assert any("copycat-plugin" in w and "already registered" in w for w in warnings)
    assert "fake-local-minima" in out.stdout and "markov-local-minima" in out.stdout


@pytest.fixture
def ridge(monkeypatch):
    """The example package, importable from its folder (CI also pip-installs it)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from ridge_theorems import paper, theorem

    return Registry([("ridge-theorems", paper.PAPER)]), theorem


def test_the_example_plugin_passes_and_its_checks_can_fail(ridge, cpu, monkeypatch):
    reg, theorem = ridge
    verdict = api.check("ridge-gd-optimum", device=cpu, registry=reg)
    kinds = {c.kind for c in verdict.checks}
    assert verdict.passed and kinds == {"obligation", "bridge", "training", "control"}
    exact = theorem.optimum
    monkeypatch.setattr(theorem, "optimum", lambda n, d: exact(n, d) * (1 + theorem.lam / 100))
    wrong = api.check("ridge-gd-optimum", device=cpu, registry=reg)
    failed = {c.kind for c in wrong.checks if not c.passed}
    assert {"obligation", "bridge", "training"} <= failed


def test_the_example_plugins_bound_uses_the_curvature_where_gradient_descent_moves(ridge, cpu):
    """d = 6 > rank X = 3: on the whole space the smallest Hessian eigenvalue is lambda itself,
    and at lambda = 1/1000 its contraction bound was 0.07 while the run reached w* to
    round-off; on the row space of X, where the run and w* lie, the bound is below the
    training tolerance."""
    reg, _ = ridge
    verdict = api.check("ridge-gd-optimum", device=cpu, registry=reg, lam="1/1000", n=40, d=6)
    checks = {check.key: check for check in verdict.checks}
    assert verdict.passed, [check.name for check in verdict.checks if not check.passed]
    assert checks["gd-contraction-bound"].measured <= 1e-10
    assert checks["gd-reaches-w-star"].measured <= 1e-12


def test_the_example_plugin_has_its_own_baseline(ridge, cpu):
    from verify import baseline

    reg, _ = ridge
    paper = reg.paper_of("ridge-gd-optimum")
    assert paper.baselines == EXAMPLE / "ridge_theorems" / "baselines"
    record = baseline.snapshot(api.check("ridge-gd-optimum", device=cpu, registry=reg))
    assert baseline.compare(baseline.load("ridge-gd-optimum", paper.baselines), record) == []


def test_every_closed_form_is_compared_with_a_measurement():
    """Each closed form of each registered theorem's prediction is named by at least one bridge
    or training check of its committed baseline (the mutation suite shows the naming is real:
    a wrong value there fails the check)."""
    from verify import baseline

    for theorem_id in registry.ids():
        directory = registry.default().paper_of(theorem_id).baselines
        stored = baseline.load(theorem_id, directory)
        measured = {name for record in stored["checks"].values()
                    if record["kind"] in ("bridge", "training") for name in record["uses"]}
        missing = set(stored["closed_forms"]) - measured
        assert not missing, f"{theorem_id}: closed forms no measurement checks: {missing}"


def test_every_theorem_has_a_control_that_reports_its_margin():
    """Each registered theorem's committed baseline (what ``verify --check-baseline`` holds the
    code to) has a control check: the prediction read where it must fail, with how far it
    misses recorded."""
    from verify import baseline

    for theorem_id in registry.ids():
        directory = registry.default().paper_of(theorem_id).baselines
        controls = [record for record in baseline.load(theorem_id, directory)["checks"].values()
                    if record["kind"] == "control"]
        assert controls, f"{theorem_id} has no control"
        assert all(record["passed"] and record["details"]["margin"] > 0
                   for record in controls), theorem_id


def _notation_covers(paper, symbol) -> bool:
    """A closed form's symbol is in the notation: itself, or its family (``\\theta_{01}`` is
    covered by an entry ``\\theta_c``; ``\\eta_{0}`` by ``\\eta_0``)."""
    import sympy as sp

    latex = sp.latex(symbol)
    written = [part.strip() for row in paper.notation for part in row[0].split(",")]
    family = latex.split("_")[0] + "_"
    return (latex in written or latex.replace("{", "").replace("}", "") in written
            or "_" in latex and any(w.startswith(family) and len(w) == len(family) + 1
                                    for w in written))


@pytest.mark.parametrize("prefix", ["markov", "ical", "topics", "ntp"])
def test_every_symbol_of_the_closed_forms_is_in_the_papers_notation(prefix):
    import sympy as sp

    paper = _builtin(prefix)
    symbols = set()
    for entry in paper.theorems:
        theorem = entry.theorem
        prediction = theorem.predict(theorem.resolve_params({}))
        forms = [*prediction.closed_forms.values(),
                 *(v for spectrum in prediction.spectra.values() for v, _ in spectrum)]
        symbols |= set().union(*(sp.sympify(form).free_symbols for form in forms))
    assert symbols
    missing = [str(s) for s in symbols if not _notation_covers(paper, s)]
    assert not missing, f"{prefix}: no notation for {missing}"


@pytest.mark.parametrize("budget", ["fast", "full"])
def test_every_theorems_defaults_are_a_request_its_budget_accepts(budget):
    """``verify --all --budget B`` runs every theorem at its defaults: each must satisfy its
    own assumptions and cost limit (the embeddings' full-budget penalty once sat above the
    lambda* of the full budget's sizes, so ``--all --budget full`` always exited 2)."""
    for theorem_id in registry.ids():
        api.prepare(theorem_id, budget=budget)
