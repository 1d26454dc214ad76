"""Proof regression: baselines are complete, an untouched tree matches, changes are caught."""

import copy
import json
import os

import pytest

from theorems import ntp
from verify import baseline, registry
from verify.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_registered_theorem_has_a_baseline():
    for theorem_id in registry.ids():
        record = baseline.load(theorem_id, registry.default().paper_of(theorem_id).baselines)
        assert record is not None, f"run `verify --theorem {theorem_id} --update-baseline`"
        assert record["theorem"] == theorem_id and record["budget"] == "fast"
        assert record["closed_forms"] and record["obligations"] and record["checks"]
        assert record["schema_version"] == baseline.SCHEMA_VERSION


def test_untouched_tree_matches_its_baseline(capsys):
    code, out, _ = _run(capsys, "--theorem", "ntp-ffn-max-margin", "--check-baseline")
    assert code == 0 and "match their baselines" in out


def test_an_altered_closed_form_is_caught(capsys, monkeypatch):
    exact = ntp.ffn_max_margin
    monkeypatch.setattr(ntp, "ffn_max_margin", lambda K, collocation: 2 * exact(K, collocation))
    code, out, _ = _run(capsys, "--theorem", "ntp-ffn-max-margin", "--check-baseline")
    assert code == 1 and "proof regression" in out
    assert "closed form 'W_ov' changed" in out and "baseline:" in out and "now:" in out


def _record():
    return {
        "schema_version": baseline.SCHEMA_VERSION, "theorem": "t", "params": {"p": "1/2"},
        "budget": "fast", "seeds": [0],
        "closed_forms": {"loss": {"srepr": "Integer(1)", "latex": "1",
                                  "value_srepr": "Integer(1)", "value_latex": "1"}},
        "obligations": {"grad = 0": {"name": "grad = 0", "holds": True, "method": "symbolic"}},
        "checks": {"final loss": {"name": "final loss", "kind": "training", "relation": "~",
                                  "predicted": 1.0, "measured": 1.00001, "passed": True,
                                  "tolerance": {"atol": 1e-4, "rtol": 0.0, "reason": "r"},
                                  "details": {}}},
    }


def test_compare_reports_each_kind_of_change():
    old = _record()
    assert baseline.compare(old, copy.deepcopy(old)) == []
    within = copy.deepcopy(old)
    within["checks"]["final loss"]["measured"] = 1.00005  # moved 4e-5 < 1e-4: not a change
    assert baseline.compare(old, within) == []
    drifted = copy.deepcopy(old)
    drifted["checks"]["final loss"]["measured"] = 0.99985  # moved 1.5e-4 > 1e-4, still passes
    flipped = copy.deepcopy(old)
    flipped["obligations"]["grad = 0"]["holds"] = False
    added = copy.deepcopy(old)
    added["checks"]["new check"] = dict(old["checks"]["final loss"], name="new check")
    rewritten = copy.deepcopy(old)
    rewritten["closed_forms"]["loss"]["srepr"] = "Integer(2)"
    loosened = copy.deepcopy(old)
    loosened["checks"]["final loss"]["tolerance"]["atol"] = 1e-1  # passes, and hides drift
    renamed = copy.deepcopy(old)
    renamed["checks"]["final loss"]["name"] = "loss after training"  # same key: no change
    assert baseline.compare(old, renamed) == []
    degraded = copy.deepcopy(old)
    degraded["obligations"]["grad = 0"]["method"] = "exact at p=1/2"  # no longer symbolic
    bound = copy.deepcopy(old)
    bound["checks"]["final loss"]["relation"] = "<="  # a ~ check turned into a bound
    moved = copy.deepcopy(old)
    moved["checks"]["final loss"]["predicted"] = 1.1
    old_schema = {k: v for k, v in old.items() if k != "schema_version"}
    assert baseline.compare(old_schema, old)[0].what == "baseline"
    cases = [(drifted, "check"), (flipped, "obligation"), (added, "check"),
             (rewritten, "closed form"), (loosened, "check"), (degraded, "obligation"),
             (bound, "check"), (moved, "check")]
    for new, what in cases:
        (difference,) = baseline.compare(old, new)
        assert difference.what == what and difference.old != difference.new
    (missing,) = baseline.compare(None, old)
    assert missing.what == "baseline" and "--update-baseline" in missing.new


def test_update_always_rewrites(capsys, monkeypatch, tmp_path):
    import dataclasses

    reg = registry.default()
    paper = reg.paper_of("ntp-ffn-max-margin")
    moved = registry.Registry([("test", dataclasses.replace(paper, baselines=tmp_path))])
    monkeypatch.setattr(registry, "default", lambda: moved)
    path = tmp_path / "ntp-ffn-max-margin.json"
    path.write_text('{"stale": true}\n')
    code, _, _ = _run(capsys, "--theorem", "ntp-ffn-max-margin", "--update-baseline")
    first = path.read_text()
    assert code == 0 and json.loads(first)["theorem"] == "ntp-ffn-max-margin"
    os.utime(path, ns=(0, 0))
    code, _, _ = _run(capsys, "--theorem", "ntp-ffn-max-margin", "--update-baseline")
    second = json.loads(path.read_text())
    assert code == 0 and path.stat().st_mtime_ns != 0
    # the same record, but where and how long it was recorded (shown in the docs, not compared)
    recorded = [json.loads(first).pop("recorded"), second.pop("recorded")]
    assert second == {k: v for k, v in json.loads(first).items() if k != "recorded"}
    assert all(r["seconds"] > 0 and "revision" in r for r in recorded)
    code, out, _ = _run(capsys, "--theorem", "ntp-ffn-max-margin", "--check-baseline")
    assert code == 0 and "match their baselines" in out


@pytest.mark.parametrize(
    "argv",
    [["--param", "eta=1"], ["--seeds", "2"], ["--budget", "full"]],
)
def test_baselines_only_at_the_recorded_setting(capsys, argv):
    code, _, err = _run(capsys, "--theorem", "ntp-ffn-max-margin", "--check-baseline", *argv)
    assert code == 2 and "baselines are recorded at the default parameters" in err


def _moved_baselines(monkeypatch, directory):
    """The registry with ntp-ffn-max-margin's paper keeping its baselines in ``directory``,
    and a run that fails the test if it starts (baseline problems come before any work)."""
    import dataclasses

    import verify.api

    paper = registry.default().paper_of("ntp-ffn-max-margin")
    moved = registry.Registry([("test", dataclasses.replace(paper, baselines=directory))])
    monkeypatch.setattr(registry, "default", lambda: moved)
    monkeypatch.setattr(verify.api, "run", lambda *a, **k: pytest.fail("the run started"))


def _committed():
    directory = registry.default().paper_of("ntp-ffn-max-margin").baselines
    return json.loads(baseline.path_for("ntp-ffn-max-margin", directory).read_text())


def _measured_abc(record):
    key = next(iter(record["checks"]))
    record["checks"][key]["measured"] = "abc"
    return json.dumps(record)


@pytest.mark.parametrize(("content", "problem"), [
    (lambda r: json.dumps(r)[:200], "not valid JSON"),
    (lambda r: "", "not valid JSON"),
    (lambda r: "[]", "malformed (a JSON list, expected an object)"),
    (lambda r: json.dumps({k: v for k, v in r.items() if k != "checks"}),
     "malformed (no 'checks')"),
    (lambda r: b"\x89PNG\x00\xff\xfe junk", "not valid JSON"),
    (None, "cannot read it (Is a directory)"),
    (_measured_abc, "'measured' has the wrong type (str)"),
])
def test_a_broken_baseline_is_one_line_before_the_run(capsys, monkeypatch, tmp_path, content,
                                                      problem):
    committed = _committed()
    _moved_baselines(monkeypatch, tmp_path)
    path = tmp_path / "ntp-ffn-max-margin.json"
    if content is None:
        path.mkdir()
    else:
        text = content(committed)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, out, err = _run(capsys, "--theorem", "ntp-ffn-max-margin", "--check-baseline")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"--check-baseline: baseline {path}: " in err and problem in err


@pytest.mark.parametrize("where", ["file-in-the-way/baselines", "baseline-is-a-directory"])
def test_update_into_an_unwritable_place_is_one_line_before_the_run(capsys, monkeypatch,
                                                                    tmp_path, where):
    (tmp_path / "file-in-the-way").write_text("x")
    (tmp_path / "baseline-is-a-directory" / "ntp-ffn-max-margin.json").mkdir(parents=True)
    _moved_baselines(monkeypatch, tmp_path / where)
    code, _, err = _run(capsys, "--theorem", "ntp-ffn-max-margin", "--update-baseline")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--update-baseline: cannot write the baseline of ntp-ffn-max-margin" in err


def test_a_baseline_of_the_wrong_types_is_not_a_match():
    """compare() took a measured value "abc" as unchanged: load refuses it."""
    record = json.loads(_measured_abc(_committed()))
    assert "'measured' has the wrong type" in baseline.malformed(record)
    assert baseline.malformed(_committed()) is None
