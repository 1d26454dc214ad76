"""topics-wikipedia (empirical, real text): registration, obligations, the full-budget code
path shrunk to seconds, and the one-line refusal when gensim is missing."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import sympy as sp

from numerics.topic_statistics import LabelGap
from theorems import topics_wikipedia as theory
from verify import baseline, registry
from verify.cli import main
from verify.experiments import topics_wikipedia as experiment
from verify.papers import topics_wikipedia as registration
from verify.records import Tolerance

THEOREM = "topics-wikipedia"
BASELINES = Path(baseline.__file__).resolve().parent / "baselines"


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_listed_as_an_empirical_claim_of_the_topics_paper():
    assert registry.theorem(THEOREM).kind == "empirical"
    assert registry.default().paper_of(THEOREM).prefix == "topics"
    assert "not proved" in registry.theorem(THEOREM).statement


def test_registration_repeats_the_experiment_budgets():
    """The torch-free cost model reads the same sizes the experiment trains with."""
    assert set(registration.SCALE) == set(experiment.BUDGETS)
    for budget, scale in registration.SCALE.items():
        sizes = experiment.BUDGETS[budget]
        assert scale._asdict() == {name: getattr(sizes, name) for name in scale._fields}


def test_cost_guard_refuses_a_huge_model_and_admits_the_defaults():
    entry = registry.entry(THEOREM)
    import verify

    assert verify.prepare(THEOREM).params["words"] == 500
    assert verify.prepare(THEOREM, budget="full").params["d"] == 128
    with pytest.raises(Exception, match="above the fast budget's limit"):
        verify.prepare(THEOREM, d=4096, words=5000)
    assert entry.default_seeds("fast") >= 2  # several seeds: the fraction that passes is shown


def test_obligations_fail_for_wrong_closed_forms():
    """The relabelling expectation is 0 and the largest admissible mixture is T - 1: a
    prediction off by 1e-3 fails the obligation that names it."""
    params = theory.WIKIPEDIA.resolve_params({})
    prediction = theory.WIKIPEDIA.predict(params)
    assert all(ob.check().holds for ob in theory.WIKIPEDIA.obligations(params, prediction))
    for name in prediction.closed_forms:
        wrong = dataclasses.replace(prediction, closed_forms={
            **prediction.closed_forms,
            name: prediction.closed_forms[name] * sp.Rational(1001, 1000) + sp.Rational(1, 1000)})
        failed = [ob for ob in theory.WIKIPEDIA.obligations(params, wrong) if not ob.check().holds]
        assert failed and all(name in ob.uses for ob in failed), name


def test_the_relabelling_obligation_is_not_a_tautology():
    """One fixed labelling's gap is a nonzero expression; only the average over every
    relabelling vanishes."""
    assert theory._relabelled_gap((0, 0, 1, 2)) == 0
    V = 4
    table = {(i, j): sp.Symbol(f"s_{i}{j}") for i in range(V) for j in range(V) if i != j}
    order = (0, 0, 1, 2)
    same = [table[p] for p in table if order[p[0]] == order[p[1]]]
    other = [table[p] for p in table if order[p[0]] != order[p[1]]]
    assert sp.expand(sp.Add(*same) / len(same) - sp.Add(*other) / len(other)) != 0


@pytest.mark.parametrize(("param", "value", "message"), [
    ("topics", "1", "topics must be at least 2"),
    ("words", "9", "words must lie in"),
    ("words", "9000", "above the fast budget"),
    ("keep", "0.95", "keep + random"),
])
def test_bad_parameters_exit_2_in_one_line(capsys, param, value, message):
    code, _, err = _run(capsys, "--theorem", THEOREM, "--param", f"{param}={value}")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_gensim_is_a_one_line_usage_error(capsys, monkeypatch):
    real = registration.importlib.util.find_spec
    monkeypatch.setattr(registration.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gensim" else real(name, *a))
    code, out, err = _run(capsys, "--theorem", THEOREM)
    assert code == 2 and "gensim is not installed" in err
    assert len(err.strip().splitlines()) == 1 and "device:" not in out  # before any work


def test_every_tolerance_of_the_experiment_is_recorded_in_the_baseline():
    record = json.loads((BASELINES / f"{THEOREM}.json").read_text())
    recorded = [c["tolerance"] for c in record["checks"].values() if c.get("tolerance")]
    named = [(name, value) for name, value in vars(experiment).items()
             if isinstance(value, Tolerance) and name.isupper()]
    assert named
    for name, tolerance in named:
        assert any(t["reason"] == tolerance.reason and math.isclose(t["atol"], tolerance.atol)
                   for t in recorded), f"{name} is used by no recorded check"


def test_the_baseline_holds_the_claim_the_controls_and_the_seed_fraction():
    record = json.loads((BASELINES / f"{THEOREM}.json").read_text())
    checks = record["checks"]
    training = [c for c in checks.values() if c["kind"] == "training"]
    controls = [c for c in checks.values() if c["kind"] == "control"]
    assert len(training) == 2 and all(c["predicted"] == experiment.SIGMAS for c in training)
    assert all(c["details"]["seeds_passing"] for c in training)
    assert {c["key"].split("-")[0] for c in controls} == {"shuffled"}
    assert all(c["passed"] and c["details"]["margin"] > 0 for c in controls)
    assert all(all(c["details"]["wikipedia_gap_significant"]) for c in controls)
    # the random relabelling is a draw from its own null: a check of the statistic (bridge)
    relabelled = [c for c in checks.values() if c["key"].startswith("random-relabelling-")]
    assert len(relabelled) == 2 and all(c["kind"] == "bridge" for c in relabelled)
    # how far from disjoint the topics are is reported beside the measured ratio
    purity = checks["topics-purer-than-random-labels"]
    assert all(r < top for r, top in zip(purity["per_seed"],
                                         purity["details"]["disjoint_topics_ratio"],
                                         strict=True))


def _gap(gap: float, standard_error: float = 1.0) -> LabelGap:
    return LabelGap(gap, standard_error, 0.0, 100, standard_error, (10, 90))


def test_the_shuffled_corpus_share_fails_unless_the_wikipedia_gap_is_significant():
    """A negative or vanishing Wikipedia gap would make any shuffled gap "at most half" of
    it: the share is then NaN, and the control fails instead of passing vacuously."""
    sigmas = experiment.SIGMAS
    shares = experiment._cooccurrence_shares(
        [(_gap(1.0), _gap(4.0)), (_gap(-3.0), _gap(-2.0)), (_gap(0.1), _gap(sigmas - 0.1)),
         (_gap(2.0), _gap(2 * sigmas))], 0.0)
    assert all(math.isnan(v) for v in shares[:3]) and shares[3] == pytest.approx(0.2)
    assert math.isnan(experiment._worst_share(shares))
    assert experiment._worst_share(shares[3:]) == pytest.approx(0.2)
    check = experiment.at_most("share", "share", "control", experiment.COOCCURRENCE_SHARE,
                               experiment._worst_share(shares), "reason", per_seed=shares)
    assert not check.passed


def test_full_budget_code_path_shrunk_to_seconds(capsys, tmp_path, monkeypatch):
    """The paper-scale path (its own sizes, several seeds, every control seed) at a size that
    runs in seconds on a CPU; too short to learn, so only the mechanics are asserted."""
    small = experiment.WikipediaBudget(length=32, batch=8, steps=12, passes=1, evaluation=16,
                                       permutations=20, probe_every=6, probe_permutations=10,
                                       probe_pieces=8,
                                       control_seeds=2)
    monkeypatch.setitem(experiment.BUDGETS, "full", small)
    code, _, _ = _run(capsys, "--theorem", THEOREM, "--budget", "full", "--seeds", "2",
                      "--device", "cpu", "--param", "words=100", "--param", "topics=4",
                      "--param", "d=8", "--json", str(tmp_path / "r.json"),
                      "--plots", str(tmp_path / "figures"))
    (entry,) = json.loads((tmp_path / "r.json").read_text())["theorems"]
    assert code in (0, 1) and entry["budget"] == "full" and entry["params"]["words"] == "100"
    keys = {c["key"] for c in entry["checks"] if c["kind"] != "obligation"}
    fast = json.loads((BASELINES / f"{THEOREM}.json").read_text())["checks"]
    assert keys == {c["key"] for c in fast.values()}
    for check in entry["checks"]:
        if check["kind"] in ("training", "control") or check["key"].startswith("random-"):
            assert len(check["per_seed"]) == 2
            assert check["details"]["permutations"] == small.permutations
            # too short to learn: a shuffled-corpus share is NaN (and fails) exactly where
            # the Wikipedia gap is not significant
            significant = check["details"].get("wikipedia_gap_significant", [True, True])
            assert [math.isfinite(v) for v in check["per_seed"]] == significant
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [  # with captions
        f"{THEOREM}-{i}.{ext}" for i in range(3) for ext in ("png", "txt")]
