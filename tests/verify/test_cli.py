"""The `verify` command: every flag and every bad input (exit 2, one line, no traceback)."""

import json
import subprocess
import sys

import pytest
import sympy as sp
import torch

import theorems.markov
from verify import registry
from verify.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_theorem(capsys):
    code, out, _ = _run(capsys, "--list")
    assert code == 0
    for theorem_id in registry.ids():
        assert theorem_id in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--theorem", "markov-local-minimum"], "did you mean markov-local-minima"),
        (["--theorem", "markov-local-minima", "--param", "r=3"], "has no parameter 'r'"),
        (["--theorem", "markov-local-minima", "--param", "p"], "expects NAME=VALUE"),
        (["--theorem", "markov-local-minima", "--param", "p=abc"], "is not a number"),
        (["--theorem", "markov-local-minima", "--param", "d=2.5"], "is not an integer"),
        (["--theorem", "markov-local-minima", "--param", "p=0.2", "--param", "q=0.3"],
         "p+q > 1 is required"),
        (["--theorem", "markov-tied-saddle", "--param", "p=0.5", "--param", "q=0.8"],
         "p+q < 1 is required"),
        (["--theorem", "markov-global-minima", "--param", "q=1.5"], "q must lie in (0, 1)"),
        (["--all", "--param", "p=0.5"], "--param applies to one theorem"),
        (["--theorem", "markov-local-minima", "--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cuda_requested_but_absent(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = _run(capsys, "--theorem", "markov-local-minima", "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err


@pytest.mark.parametrize("where", ["missing-dir/report.json", "a-directory", "a-file/report.json"])
def test_unwritable_json_path(capsys, tmp_path, where):
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("x")
    code, _, err = _run(capsys, "--theorem", "markov-local-minima", "--json",
                        str(tmp_path / where))
    assert code == 2 and "--json" in err and "Traceback" not in err


def test_unwritable_plots_dir(capsys, tmp_path):
    (tmp_path / "a-file").write_text("x")
    code, _, err = _run(capsys, "--theorem", "markov-local-minima", "--plots",
                        str(tmp_path / "a-file" / "plots"))
    assert code == 2 and "--plots" in err


@pytest.mark.parametrize("argv", [
    ["--theorem", "markov-local-minima", "--budget", "huge"], ["--device", "mps", "--all"],
    ["--theorem", "markov-local-minima", "--seeds", "1.5"], [],
    ["--all", "--check-baseline", "--update-baseline"], ["sweep", "markov-local-minima"],
])
def test_argument_parser_errors_are_one_line_and_exit_2(capsys, argv):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--help" in err
    assert "usage:" not in err + out


def test_local_minima_passes_and_is_discriminating(capsys, tmp_path):
    """Done-when of the foundation issue: exit 0, every check kind passes, JSON says so, and
    the tied run plateaus at H(pi) while the untied run ends at the entropy rate."""
    report_path, plots = tmp_path / "r.json", tmp_path / "plots"
    code, out, _ = _run(capsys, "--theorem", "markov-local-minima", "--json", str(report_path),
                        "--plots", str(plots), "--seeds", "1", "--device", "cpu")
    assert code == 0, out
    report = json.loads(report_path.read_text())
    assert report["passed"] is True
    (entry,) = report["theorems"]
    kinds = {c["kind"] for c in entry["checks"] if c["passed"]}
    assert kinds == {"obligation", "guard", "bridge", "training", "control"}
    assert all(c["passed"] for c in entry["checks"])
    assert report["settings"]["budget"] == "fast" and entry["seeds"] == [0]
    assert report["environment"]["packages"]["torch"] == torch.__version__.split("+")[0] or \
        report["environment"]["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert entry["params"] == {"p": "1/2", "q": "4/5", "d": "4"}

    prediction = registry.theorem("markov-local-minima").predict(
        registry.theorem("markov-local-minima").resolve_params({}))
    h_pi, rate = prediction.float("unigram_loss"), prediction.float("entropy_rate")
    plateau = next(c for c in entry["checks"] if "within tolerance of H(pi)" in c["name"])
    level = plateau["details"]["plateaus"][0]["mean_loss"]
    assert abs(level - h_pi) <= plateau["details"]["band"] and level - rate > 0.04
    untied = next(c for c in entry["checks"] if c["name"].startswith("untied"))
    assert untied["kind"] == "control" and untied["passed"]
    assert untied["measured"] <= untied["predicted"]
    assert sorted(p.name for p in plots.iterdir()) == [  # each figure with its caption
        "markov-local-minima-0.png", "markov-local-minima-0.txt",
        "markov-local-minima-1.png", "markov-local-minima-1.txt"]
    assert all((plots / f"markov-local-minima-{i}.txt").read_text().strip() for i in (0, 1))


def test_untied_run_ends_at_the_entropy_rate(capsys, tmp_path):
    """The other half of the discrimination: untied, same (p, q), ends at the entropy rate."""
    code, _, _ = _run(capsys, "--theorem", "markov-saddle-untied", "--json",
                      str(tmp_path / "r.json"))
    (entry,) = json.loads((tmp_path / "r.json").read_text())["theorems"]
    final = next(c for c in entry["checks"] if "final population loss" in c["name"])
    theorem = registry.theorem("markov-saddle-untied")
    rate = theorem.predict(theorem.resolve_params({})).float("entropy_rate")
    assert code == 0 and abs(final["measured"] - rate) <= final["tolerance"]["atol"]


def test_every_theorem_with_other_params_and_seeds(capsys, tmp_path):
    code, out, _ = _run(capsys, "--theorem", "markov-saddle-untied", "--param", "p=0.9",
                        "--param", "q=9/10", "--seeds", "2", "--json", str(tmp_path / "r.json"))
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["theorems"][0]["seeds"] == [0, 1]
    assert report["theorems"][0]["params"]["p"] == "9/10"


def test_a_failing_check_exits_1(capsys, monkeypatch):
    # H(pi) off by 1/10 (set equal to the entropy rate instead, the request is refused: exit 2)
    monkeypatch.setattr(theorems.markov, "unigram_entropy",
                        theorems.markov.unigram_entropy + sp.Rational(1, 10))
    code, out, _ = _run(capsys, "--theorem", "markov-local-minima")
    assert code == 1 and "FAIL" in out


def test_python_dash_m_and_console_script():
    for command in ([sys.executable, "-m", "verify", "--list"], ["verify", "--list"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "markov-local-minima" in done.stdout


def test_all_runs_every_registered_theorem_in_order(capsys, tmp_path, monkeypatch):
    """``--all`` runs every theorem of the registry in registration order, and its exit code is
    the report's verdict. Here on a registry of one paper (the four NTP theorems, seconds):
    every built-in theorem runs end to end in CI's ``verify --all --check-baseline``."""
    from verify.papers import ntp

    one_paper = registry.Registry([("transformer-theorems", ntp.PAPER)])
    monkeypatch.setattr(registry, "default", lambda: one_paper)
    code, _, _ = _run(capsys, "--all", "--workers", "1", "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert [t["id"] for t in report["theorems"]] == one_paper.ids()
    assert len(one_paper.ids()) == len(ntp.PAPER.theorems) > 1
    assert code == (0 if report["passed"] else 1)
    # the same theorems in two worker processes: the same verdicts, values and order
    code2, out, _ = _run(capsys, "--all", "--workers", "2", "--json", str(tmp_path / "p.json"))
    parallel = json.loads((tmp_path / "p.json").read_text())
    assert code2 == code and "2 workers" in out and parallel["settings"]["workers"] == 2
    assert [t["id"] for t in parallel["theorems"]] == one_paper.ids()
    printed = [out.index(f"{theorem_id}  (") for theorem_id in one_paper.ids()]
    assert printed == sorted(printed)
    for serial, other in zip(report["theorems"], parallel["theorems"], strict=True):
        assert [(c["key"], c["measured"], c["passed"]) for c in serial["checks"]] == [
            (c["key"], c["measured"], c["passed"]) for c in other["checks"]]


def test_workers_keep_the_request_order_whatever_finishes_first():
    import time
    from concurrent.futures import ThreadPoolExecutor

    from verify.pool import TheoremRequest, run_theorems

    requests = [TheoremRequest(f"t-{i}") for i in range(5)]

    def runner(request):  # the first request finishes last
        index = int(request.theorem_id[2:])
        time.sleep(0.05 * (5 - index))
        return request.theorem_id

    started = []

    def recording(request):
        started.append(request.theorem_id)
        return runner(request)

    out = list(run_theorems(requests, 2, order=lambda i: i, runner=recording,
                            pool=lambda workers, threads: ThreadPoolExecutor(workers)))
    assert out == [r.theorem_id for r in requests]
    assert started[:2] == ["t-4", "t-3"]  # the costliest first


@pytest.mark.parametrize("argv, message", [
    (["--all", "--workers", "0"], "--workers must lie in 1.."),
    (["--all", "--workers", "100000"], "--workers must lie in 1.."),
    (["--theorem", "markov-local-minima", "--workers", "2"], "use it with --all"),
])
def test_bad_workers_are_refused_before_any_work(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("theorem_id", ["markov-saddle-untied", "markov-depth-escape"])
def test_full_budget_path_runs_on_sampled_batches(capsys, tmp_path, monkeypatch, theorem_id):
    """The paper-scale code path (fresh batches, Monte Carlo tolerances), shrunk to seconds.

    The shrunken run is far too short to converge, so only the mechanics are asserted: the
    report records the sampled budget, and its tolerances carry standard errors.
    """
    from verify.experiments import markov as experiments

    small = experiments.MarkovBudget(N=16, steps=40, exact=False, batch=8, eval_sequences=64,
                                     smoothing=5, dtype=torch.float32)
    monkeypatch.setitem(experiments.BUDGETS, "full", small)
    code, _, _ = _run(capsys, "--theorem", theorem_id, "--budget", "full",
                      "--seeds", "2", "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    (entry,) = report["theorems"]
    assert code in (0, 1) and entry["budget"] == "full" and entry["params"]["d"] == "8"
    from verify.pool import available_cores  # one full-budget run takes every core
    assert report["settings"]["threads"] == available_cores()
    final = next(c for c in entry["checks"] if "final population loss" in c["name"])
    assert len(final["details"]["standard_errors"]) == 2
    assert all(se > 0 for se in final["details"]["standard_errors"])
    assert "standard errors" in final["tolerance"]["reason"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--theorem", "ical-pe-trigonometric", "--param", "d=5"], "d must be even"),
        (["--theorem", "ical-unitary-global-minima", "--param", "H=0"], "H must be at least 1"),
        (["--theorem", "ical-one-step-gd", "--param", "T=1"], "T must be at least 2"),
        (["--theorem", "ical-pe-trigonometric", "--param", "H=4"], "H < d is required"),
    ],
)
def test_ical_bad_sizes_exit_2(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_ical_full_budget_path_at_paper_size(capsys, tmp_path, monkeypatch):
    """d = 10, T = 20 (the paper's scale) runs end to end with a shrunken budget: the chunked
    Monte Carlo and the training code paths work at that size. Too short to converge, so only
    the mechanics are asserted."""
    from verify.experiments import ical as experiments

    monkeypatch.setitem(experiments.BUDGETS, "full", experiments.IcalBudget(
        steps=5, train_set=256, gd_steps=5, mc_samples=experiments.MC_CHUNK + 10))
    code, _, _ = _run(capsys, "--theorem", "ical-one-step-gd", "--budget", "full", "--seeds",
                      "1", "--json", str(tmp_path / "r.json"))
    (entry,) = json.loads((tmp_path / "r.json").read_text())["theorems"]
    assert code in (0, 1) and entry["params"] == {"d": "10", "T": "20"}
    bridge = [c for c in entry["checks"] if c["kind"] == "bridge"]
    assert bridge and all(c["passed"] for c in bridge)
    assert bridge[0]["details"]["samples"] == experiments.MC_CHUNK + 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--theorem", "topics-value-block-structure", "--param", "tau=4"], "tau must lie in"),
        (["--theorem", "topics-value-block-structure", "--param", "lam=0"], "lambda must be > 0"),
        (["--theorem", "topics-attention-structure", "--param", "mask=-0.1"],
         "mask must be a probability"),
        (["--theorem", "topics-attention-structure", "--param", "keep=0.9", "--param",
          "random=0.2"], "must sum to 1"),
        (["--theorem", "topics-embedding-block-structure", "--param", "mask=0.2"],
         "has no parameter 'mask'"),
    ],
)
def test_topics_bad_input_exit_2(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_finished_verdicts_survive_an_interrupt_or_a_dead_worker():
    """Verdicts that finished behind a slower, earlier theorem are handed over with the
    exception, so a partial report keeps every theorem that finished."""
    import time
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from verify.pool import TheoremRequest, run_theorems

    def runner(request):
        if request.theorem_id == "t-0":  # the first (slowest) one dies
            time.sleep(0.2)
            raise BrokenProcessPool("killed")
        return request.theorem_id

    stream = run_theorems([TheoremRequest(f"t-{i}") for i in range(3)], 2, runner=runner,
                          pool=lambda workers, threads: ThreadPoolExecutor(workers))
    with pytest.raises(BrokenProcessPool) as caught:
        list(stream)
    assert caught.value.finished == ["t-1", "t-2"]


def test_ctrl_c_while_a_verdict_is_shown_keeps_the_ones_finished_behind_it(capsys, tmp_path,
                                                                          monkeypatch):
    """Ctrl-C while the first verdict is printed: the interrupt goes into the stream, whose
    pool then hands back the verdicts that had finished behind a slower one; the partial
    report holds both (closing the stream instead lost the second)."""
    import verify
    import verify.pool
    from verify import report as report_module
    from verify.papers import ntp

    one_paper = registry.Registry([("transformer-theorems", ntp.PAPER)])
    monkeypatch.setattr(registry, "default", lambda: one_paper)
    first, second = (verify.check(theorem_id, device="cpu") for theorem_id in one_paper.ids()[:2])

    def stream(requests, *args, **kwargs):
        try:
            yield first
        except KeyboardInterrupt as interrupt:  # what run_theorems does, in short
            interrupt.finished = [second]
            raise

    def render(verdict, console):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify.pool, "run_theorems", stream)
    monkeypatch.setattr(report_module, "render", render)
    code, _, err = _run(capsys, "--all", "--workers", "2", "--json", str(tmp_path / "r.json"))
    assert code == 130 and "interrupted" in err
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["complete"] is False
    assert [t["id"] for t in saved["theorems"]] == [first.theorem_id, second.theorem_id]


def test_a_dead_worker_is_one_line_exit_1_with_a_partial_report(capsys, tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    import verify
    import verify.pool
    from verify.papers import ntp

    one_paper = registry.Registry([("transformer-theorems", ntp.PAPER)])
    monkeypatch.setattr(registry, "default", lambda: one_paper)
    done = verify.check(one_paper.ids()[1], device="cpu")

    def dying(requests, *args, **kwargs):
        error = BrokenProcessPool("a worker was killed")
        error.finished = [done]
        raise error
        yield  # a generator, like the real one

    monkeypatch.setattr(verify.pool, "run_theorems", dying)
    code, _, err = _run(capsys, "--all", "--workers", "2", "--json", str(tmp_path / "r.json"))
    assert code == 1 and "a worker process died" in err and len(err.strip().splitlines()) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["complete"] is False
    assert [t["id"] for t in report["theorems"]] == [done.theorem_id]


@pytest.mark.parametrize(("argv", "option"), [
    (["--theorem", "markov-local-minima", "--theorem", "markov-global-minima"], "--theorem"),
    (["--all", "--json", "a.json", "--json", "b.json"], "--json"),
    (["--all", "--plots", "a", "--plots", "b"], "--plots"),
    (["--all", "--budget", "fast", "--budget", "full"], "--budget"),
    (["--all", "--device", "cpu", "--device", "cuda"], "--device"),
    (["--theorem", "markov-local-minima", "--seeds", "1", "--seeds", "2"], "--seeds"),
    (["--theorem", "markov-local-minima", "--param", "p=0.6", "--param", "p=0.7"],
     "--param p"),
    (["--theorem", "markov-local-minima", "--all"], "not allowed with"),
])
def test_an_option_given_twice_is_refused(capsys, tmp_path, monkeypatch, argv, option):
    """A silent "the last one wins" would verify something else than was asked for."""
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, *argv)
    assert code == 2 and option in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # refused before any output was made


@pytest.mark.parametrize("extra", [["--param", "p=0.7"], ["--seeds", "0"],
                                   ["--json", "/nonexistent/x.json"], ["--device", "cuda"],
                                   ["--check-baseline"], ["--budget", "fast"]])
def test_list_refuses_the_options_it_does_not_use(capsys, extra):
    code, out, err = _run(capsys, "--list", *extra)
    assert code == 2 and f"--list takes no other option (got {extra[0]})" in err
    assert not out and len(err.strip().splitlines()) == 1


def test_json_and_plots_on_one_path_are_refused_before_the_run(capsys, tmp_path, monkeypatch):
    import verify.api

    monkeypatch.setattr(verify.api, "run", lambda *a, **k: pytest.fail("the run started"))
    same = str(tmp_path / "out")
    code, _, err = _run(capsys, "--theorem", "markov-local-minima", "--json", same,
                        "--plots", same)
    assert code == 2 and "--json and --plots name the same path" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [
    ["--theorem", "markov-local-minima", "--seeds", "٣"],
    ["--theorem", "markov-local-minima", "--seeds", "1_000"],
    ["--theorem", "markov-local-minima", "--seeds", " 2"],
    ["--theorem", "markov-local-minima", "--threads", "١"],
    ["--all", "--workers", "2_0"],
    ["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:3", "--seeds", "٣"],
    ["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:3", "--workers", "1_0"],
])
def test_integer_options_take_ascii_digits_only(capsys, argv):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "ASCII digits only" in err and len(err.strip().splitlines()) == 1


def test_plots_dir_is_made_only_once_the_request_is_valid(capsys, tmp_path):
    plots = tmp_path / "new" / "a" / "b"
    code, _, err = _run(capsys, "--theorem", "markov-local-minima", "--param", "p=nan",
                        "--plots", str(plots))
    assert code == 2 and "is not a number" in err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("where", "message"), [
    ("a" * 300 + ".json", "File name too long"),
    ("adir/" + "a" * 300 + "/x.json", "cannot write there"),
    ("", "empty path"),
    ("x.json/", "ends in a slash"),
    ("/sys/x.json", "not a regular file system"),
    ("/proc/self/status", "not a regular file system"),
])
def test_json_paths_that_cannot_hold_a_report_are_named_truly(capsys, tmp_path, monkeypatch,
                                                               where, message):
    """A name too long was a traceback; /sys and /proc said "the disk is full", '' said "is a
    directory" (Path('') is '.') and x.json/ wrote x.json."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    code, _, err = _run(capsys, "--theorem", "markov-local-minima", "--json", where)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and "disk is full" not in err
    assert list(tmp_path.iterdir()) == [tmp_path / "adir"]


def test_a_terminal_that_is_not_there_is_not_called_a_pipe():
    """``--json /dev/tty`` without a controlling terminal (a new session has none)."""
    done = subprocess.run([sys.executable, "-m", "verify", "--theorem", "markov-local-minima",
                           "--json", "/dev/tty"], capture_output=True, text=True, timeout=60,
                          start_new_session=True)
    assert done.returncode == 2 and "--json /dev/tty: cannot write there" in done.stderr
    assert "a pipe nobody reads" not in done.stderr


def test_columns_0_still_lists_the_theorems(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "0")
    code, out, _ = _run(capsys, "--list")
    assert code == 0 and all(theorem_id in out for theorem_id in registry.ids())


def test_cuda_on_a_cpu_only_torch_is_refused_without_importing_torch():
    """Where the installed torch is a ``+cpu`` build, ``--device cuda`` is refused before
    torch (seconds) is imported, with the message select_device gives."""
    from importlib import metadata

    if not metadata.version("torch").endswith("+cpu"):
        pytest.skip("a CUDA build of torch: select_device decides")
    probe = ("import sys, runpy\nsys.argv = ['verify', *sys.argv[1:]]\ntry:\n"
             "    runpy.run_module('verify', run_name='__main__')\nexcept SystemExit as e:\n"
             "    assert 'torch' not in sys.modules, 'torch was imported'\n    raise\n")
    for target in (["--theorem", "markov-local-minima"], ["--all"]):
        done = subprocess.run([sys.executable, "-c", probe, *target, "--device", "cuda"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == (
            "verify: error: --device cuda was asked for, but CUDA is not available on this "
            f"machine (torch {torch.__version__}); use --device cpu or --device auto")
