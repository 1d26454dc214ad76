"""Sweeps: grid parsing, the local and Ray backends, resume, retries, outputs, bad input."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from fractions import Fraction

import pytest

from verify import registry, sweeps
from verify.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_grid_values_are_exact():
    axis = sweeps.parse_grid("p=0.05:0.95:10", registry.theorem("markov-local-minima"))
    assert axis.values[0] == "1/20" and axis.values[-1] == "19/20" and len(axis.values) == 10
    assert [Fraction(v) for v in axis.values] == [Fraction(1, 20) + Fraction(i, 10)
                                                  for i in range(10)]
    single = sweeps.parse_grid("d=4:8:1", registry.theorem("markov-local-minima"))
    assert single.values == ("4",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("p=0.1:0.9", "expects NAME=START:STOP:NUM"),
        ("p0.1:0.9:3", "expects NAME=START:STOP:NUM"),
        ("p=a:b:3", "must be numbers"),
        ("p=0.1:0.9:0", "empty grid"),
        ("r=0:1:3", "has no parameter 'r'"),
        ("d=2:5:3", "integer parameter"),
    ],
)
def test_malformed_grids_are_named(spec, message):
    with pytest.raises(sweeps.SweepError, match=message):
        sweeps.parse_grid(spec, registry.theorem("markov-local-minima"))


def test_text_parameters_cannot_be_swept():
    with pytest.raises(sweeps.SweepError, match="not numeric"):
        sweeps.parse_grid("orders=0:1:2", registry.theorem("ntp-ffn-max-margin"))


def test_tasks_are_the_grid_product_with_stable_keys():
    theorem = registry.theorem("markov-local-minima")
    axes = [sweeps.parse_grid("p=0.1:0.9:3", theorem), sweeps.parse_grid("q=0.5:0.9:2", theorem)]
    tasks = sweeps.tasks_for(theorem.id, axes, {"d": "4"}, "fast", None)
    assert len(tasks) == 6 and len({t.key for t in tasks}) == 6
    assert tasks == sweeps.tasks_for(theorem.id, axes, {"d": "4"}, "fast", None)
    assert all(dict(t.params)["d"] == "4" for t in tasks)
    with pytest.raises(sweeps.SweepError, match="swept once"):
        sweeps.tasks_for(theorem.id, axes, {"p": "0.5"}, "fast", None)


def _fake_task(i: int) -> sweeps.Task:
    return sweeps.Task("ntp-ffn-max-margin", (("T0", str(i)),), "fast", None)


def test_a_failing_task_is_retried_once_then_reported_and_the_others_finish():
    calls: dict[str, int] = {}

    def runner(task):
        calls[task.key] = calls.get(task.key, 0) + 1
        i = int(dict(task.params)["T0"])
        if i == 1 and calls[task.key] == 1:
            raise RuntimeError("transient")  # succeeds on the retry
        if i == 2:
            raise ValueError("always broken")
        return {"key": task.key, "status": "passed", "params": dict(task.params)}

    tasks = [_fake_task(i) for i in range(4)]
    results = {}
    sweeps.run_local(tasks, 2, lambda task, record: results.__setitem__(task.key, record),
                    runner=runner, pool=ThreadPoolExecutor)
    assert len(results) == 4
    assert results[tasks[1].key]["status"] == "passed" and calls[tasks[1].key] == 2
    assert results[tasks[2].key]["status"] == "failed" and calls[tasks[2].key] == 2
    assert "ValueError: always broken" in results[tasks[2].key]["reason"]
    assert calls[tasks[0].key] == calls[tasks[3].key] == 1


def test_finish_runs_on_the_last_pool_while_its_workers_are_up():
    """The sweep draws its heatmaps with ``finish``: on the last pool's own ``map`` after
    every task is reported (the retried one included), on the built-in ``map`` when there was
    nothing to run."""
    pools, seen, calls = [], {}, []

    def pool(workers):
        pools.append(ThreadPoolExecutor(workers))
        return pools[-1]

    def finish(map_):
        assert map_ == pools[-1].map  # bound to the last pool
        assert len(seen) == len(tasks)  # after every task is reported
        return sorted(map_(lambda key: key + "!", seen))  # its workers still take work

    def runner(task):
        calls.append(task.key)
        if task.key == tasks[1].key and calls.count(task.key) == 1:
            raise RuntimeError("transient")  # retried in a second pool
        return {"key": task.key, "status": "passed"}

    tasks = [_fake_task(i) for i in range(3)]
    drawn = sweeps.run_local(tasks, 2, lambda task, record: seen.__setitem__(task.key, record),
                             runner=runner, pool=pool, finish=finish)
    assert len(pools) == 2
    assert drawn == sorted(task.key + "!" for task in tasks)
    assert sweeps.run_local([], 2, seen.__setitem__, runner=runner, pool=pool,
                            finish=lambda map_: map_ is map)
    assert len(pools) == 2  # no pool started for an empty list


def test_heatmaps_are_drawn_here_when_the_pool_cannot(tmp_path):
    """A pool that breaks while drawing (a lost worker) leaves the heatmaps to the parent."""
    def broken_map(function, jobs):
        raise BrokenProcessPool("a worker died")

    values = ("1/2", "3/5")
    spec = {"theorem": "markov-local-minima",
            "grid": [{"name": "p", "values": values}, {"name": "q", "values": values}]}
    records = [{"params": {"p": p, "q": q}, "status": "passed",
                "quantities": {"a": 1.0, "b": 2.0}} for p in values for q in values]
    figures = sweeps.write_heatmaps(tmp_path, spec, records, None, broken_map)
    assert sorted(path.name for path in figures) == ["a.png", "b.png"]
    assert all(path.stat().st_size > 0 for path in figures)


def test_local_sweep_writes_results_skips_outside_points_and_resumes(capsys, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "sweep"
    argv = ["sweep", "ntp-ffn-max-margin", "--grid", "eta0=-1/2:1/2:3", "--workers", "2",
            "--out", str(out)]
    code, stdout, _ = _run(capsys, *argv)
    assert code == 0, stdout
    data = json.loads((out / "sweep.json").read_text())
    by_eta = {p["params"]["eta0"]: p for p in data["points"]}
    assert by_eta["1/2"]["status"] == "passed"
    for eta in ("-1/2", "0"):
        assert by_eta[eta]["status"] == "outside"
        assert "eta0 must be a step size > 0" in by_eta[eta]["reason"]
    assert data["summary"]["passed"] == 1 and data["summary"]["outside"] == 2
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("eta0,status,reason")
    assert (out / "checks-passed-1-all.png").exists()
    assert len(list((out / "tasks").glob("*.json"))) == 3

    def nothing_left(tasks, *args, finish, **kwargs):
        assert tasks == []  # every point was finished: nothing is run again
        return finish(map)

    monkeypatch.setattr(sweeps, "run_local", nothing_left)
    code, stdout, _ = _run(capsys, *argv)
    assert code == 0 and "3 already finished" in stdout


def test_a_failed_task_is_run_again_on_resume(tmp_path):
    store = sweeps.ResultStore(tmp_path)
    task = _fake_task(5)
    store.write({"key": task.key, "status": "failed", "reason": "boom"})
    assert store.finished(task) is None
    store.write({"key": task.key, "status": "passed", "params": dict(task.params),
                 "quantities": {}, "checks": {}})
    assert store.finished(task)["status"] == "passed"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep", "markov-local-minimum", "--grid", "p=0.1:0.9:3"], "did you mean"),
        (["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:0"], "empty grid"),
        (["sweep", "markov-local-minima", "--grid", "p=0.1-0.9"], "START:STOP:NUM"),
        (["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:3", "--address", "x:1"],
         "--address needs --backend ray"),
        (["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:3", "--backend", "ray",
          "--address", "127.0.0.1:1"], "cannot reach a Ray cluster"),
        (["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:3", "--workers", "0"],
         "--workers must be at least 1"),
        (["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:3", "--param", "z=1"],
         "has no parameter 'z'"),
    ],
)
def test_bad_sweep_input_exit_2(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_ray_backend_without_ray_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code, _, err = _run(capsys, "sweep", "ntp-ffn-max-margin", "--grid", "T0=10:20:2",
                        "--backend", "ray", "--out", str(tmp_path))
    assert code == 2 and "pip install 'transformer-theorems[distributed]'" in err


def test_ray_backend_on_a_local_cluster(capsys, tmp_path):
    """A local ``ray.init(num_cpus=2)``; the same points as the local backend would give."""
    pytest.importorskip("ray", reason="Ray is installed with the [distributed] extra")
    code, stdout, _ = _run(capsys, "sweep", "ntp-ffn-max-margin", "--grid", "T0=10:20:2",
                           "--backend", "ray", "--workers", "2", "--out", str(tmp_path))
    assert code == 0, stdout
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["backend"] == "ray" and data["summary"]["passed"] == 2
    local = sweeps.run_task(sweeps.Task("ntp-ffn-max-margin", (("T0", "10"),), "fast", None))
    ray_point = next(p for p in data["points"] if p["params"]["T0"] == "10")
    assert ray_point["checks"] == local["checks"]


WORKER_THAT_DIES_ONCE = '''
import os
from pathlib import Path

MARKER = Path(__file__).with_name("died-once")


def die_once(task):
    if not MARKER.exists():
        MARKER.write_text("x")
        os._exit(1)  # the worker process is lost mid-task
    return {"key": task.key, "status": "passed", "params": dict(task.params)}
'''


def test_a_lost_worker_is_replaced_and_its_task_retried(tmp_path, monkeypatch):
    """A worker process that dies breaks the pool; the sweep starts a fresh pool and retries."""
    (tmp_path / "lost_worker_helper.py").write_text(WORKER_THAT_DIES_ONCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    from lost_worker_helper import die_once

    results = {}
    sweeps.run_local([_fake_task(7)], 1, lambda task, record: results.__setitem__(task.key,
                                                                              record),
                    runner=die_once)
    assert (tmp_path / "died-once").exists()
    assert [r["status"] for r in results.values()] == ["passed"]


def test_markov_phase_quantities_separate_the_trap_from_the_escape():
    """At (p, q) = (1/2, 4/5), p + q > 1: tied training ends at H(pi) (1), untied at the
    entropy rate (0); the scale of the fast budget's loss tolerance (FAST_LOSS) relative to the gap
    H(pi) - rate (0.047) bounds the distance from 0 and 1. Outside (0, 1) nothing is trained."""
    import torch

    from verify.experiments import markov

    quantities = markov.phase_quantities({"p": "1/2", "q": "4/5", "d": 4}, "fast", (0,),
                                         torch.device("cpu"), {})
    slack = 10 * markov.FAST_LOSS.atol / 0.047
    assert abs(quantities["tied: final loss, 0 = entropy rate, 1 = H(pi)"] - 1) < slack
    assert abs(quantities["untied: final loss, 0 = entropy rate, 1 = H(pi)"]) < slack
    assert quantities["tied: fraction of steps at H(pi)"] > markov.PLATEAU_FRACTION
    assert markov.phase_quantities({"p": "1", "q": "1/2", "d": 4}, "fast", (0,),
                                   torch.device("cpu"), {}) == {}


def _fails_on_two(task):
    if dict(task.params)["T0"] == "2":
        raise ValueError("always broken")
    return {"key": task.key, "status": "passed", "params": dict(task.params)}


def test_ray_backend_reports_a_task_that_keeps_failing():
    pytest.importorskip("ray", reason="Ray is installed with the [distributed] extra")
    results = {}
    sweeps.run_ray([_fake_task(i) for i in range(3)], 2, None,
                  lambda task, record: results.__setitem__(dict(task.params)["T0"], record),
                  runner=_fails_on_two)
    assert {k: r["status"] for k, r in results.items()} == {"0": "passed", "1": "passed",
                                                            "2": "failed"}
    assert "ValueError: always broken" in results["2"]["reason"]


def test_a_unit_scale_quantity_keeps_its_colour_bar_on_0_to_1(tmp_path, monkeypatch):
    """The untied sweep ends within 1e-5 of the entropy rate everywhere: on a bar labelled
    "0 = entropy rate, 1 = H(pi)" that must read as 0, not fill the colour map."""
    from matplotlib.figure import Figure

    drawn = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: drawn.append(self))
    name = "untied: final loss, 0 = entropy rate, 1 = H(pi)"
    values = ("1/2", "3/5")
    spec = {"theorem": "markov-local-minima",
            "grid": [{"name": "p", "values": values}, {"name": "q", "values": values}]}
    records = [{"params": {"p": p, "q": q}, "status": "passed",
                "quantities": {name: 4.5e-6 * i, "plain": float(i)}}
               for i, (p, q) in enumerate((p, q) for p in values for q in values)]
    sweeps.write_heatmaps(tmp_path, spec, records)
    by_label = {}
    for fig in drawn:
        heatmap, bar = fig.axes  # the heatmap, then its colour bar
        by_label[bar.get_ylabel().replace("\n", " ")] = heatmap.collections[0].get_clim()
    assert by_label[name] == (0.0, 1.0)
    assert by_label["plain"] == (0.0, 3.0)  # no stated scale: the data's range


@pytest.mark.parametrize("table", ["sweep.json", "sweep.csv"])
def test_sweep_tables_are_written_atomically(tmp_path, monkeypatch, table):
    """A disk that fills while a table is written leaves the previous table whole (they were
    written in place: a truncated file), and no temporary file behind."""
    import errno
    from pathlib import Path

    spec = {"theorem": "t", "grid": [{"name": "p", "values": ["1/2"]}]}
    records = [{"params": {"p": "1/2"}, "status": "passed", "quantities": {"a": 1.0}}]
    sweeps.write_tables(tmp_path, spec, records)
    before = (tmp_path / table).read_bytes()
    write_text = Path.write_text

    def full_at_table(self, text, *args, **kwargs):
        if table not in self.name:
            return write_text(self, text, *args, **kwargs)
        write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_at_table)
    with pytest.raises(OSError, match="No space"):
        sweeps.write_tables(tmp_path, spec, records * 2)
    assert (tmp_path / table).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv", "sweep.json"]


def _outside_points(out, theorem_id, grid):
    """The points of ``grid`` stored as finished (outside the assumptions) in ``out``."""
    theorem = registry.theorem(theorem_id)
    tasks = sweeps.tasks_for(theorem_id, [sweeps.parse_grid(grid, theorem)], {}, "fast", None)
    store = sweeps.ResultStore(out)
    for task in tasks:
        store.write({"key": task.key, "theorem": theorem_id, "params": dict(task.params),
                     "status": "outside", "reason": "r", "quantities": {}, "checks": {}})
    return tasks


def test_a_full_disk_at_the_tables_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    import errno

    out = tmp_path / "sweep"
    _outside_points(out, "ntp-ffn-max-margin", "eta0=-1:-1/2:2")
    monkeypatch.setattr(sweeps, "run_local",
                        lambda tasks, *args, finish, **kwargs: finish(map))

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sweeps, "write_atomic", full)
    code, _, err = _run(capsys, "sweep", "ntp-ffn-max-margin", "--grid", "eta0=-1:-1/2:2",
                        "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot write the results (No space left on device)" in err
    assert "finished points are kept" in err


def test_a_task_file_without_its_fields_is_computed_again_with_one_warning(tmp_path):
    """``{"status": "passed"}`` (no parameters, no quantities) was taken as finished and ended
    the sweep in a KeyError; it is recomputed like a truncated file, with one warning line."""
    out = tmp_path / "sweep"
    tasks = _outside_points(out, "ntp-ffn-max-margin", "eta0=-1:-1/2:2")
    broken = out / "tasks" / f"{tasks[0].key}.json"
    broken.write_text('{"status": "passed"}')
    done = subprocess.run([sys.executable, "-m", "verify", "sweep", "ntp-ffn-max-margin",
                           "--grid", "eta0=-1:-1/2:2", "--workers", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"verify: warning: {broken}: unreadable result (its parameters are "
                           "missing or not the point's), the point is computed again\n")
    assert "1 already finished" in done.stdout
    assert json.loads(broken.read_text())["params"] == {"eta0": "-1"}


@pytest.mark.parametrize("record", [
    [], {"status": "passed"}, {"status": "bogus", "params": {"T0": "3"}},
    {"status": "passed", "params": {"T0": "4"}, "quantities": {}},
    {"status": "passed", "params": {"T0": "3"}, "quantities": {"a": "x"}},
    {"status": "outside", "params": {"T0": "3"}, "quantities": {}},
])
def test_malformed_task_records_are_not_finished(tmp_path, record):
    store = sweeps.ResultStore(tmp_path)
    task = _fake_task(3)
    (store.tasks / f"{task.key}.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="unreadable result"):
        assert store.finished(task) is None


def test_sweep_workers_are_capped_as_for_all(capsys):
    code, _, err = _run(capsys, "sweep", "markov-local-minima", "--grid", "p=0.1:0.9:3",
                        "--workers", "65")
    assert code == 2 and f"--workers must be at most {sweeps.MAX_WORKERS}" in err
