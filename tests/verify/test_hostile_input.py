"""Hostile input, huge sizes and interruptions: one line and exit 2 before any heavy work,
nothing lost when a run or a sweep is stopped, no worker outliving its parent.

How fast a usage error appears is measured by ``benchmarks/usage_errors.py`` (never by a timed
test); here the structural reason it is fast is tested: validation never imports torch.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verify.cli import main

CASES = [
    (["--theorem", "markov-local-minima", "--param", "p=1/0"], "divides by zero"),
    (["--theorem", "markov-local-minima", "--param", "p=٠.٧"], "is not a number"),
    (["--theorem", "markov-local-minima", "--param", "p=nan"], "is not a number"),
    (["--theorem", "markov-local-minima", "--param", "p=inf"], "is not a number"),
    (["--theorem", "markov-global-minima", "--param", "p=1e-400"], "exponent"),
    (["--theorem", "markov-global-minima", "--param", "p=1e400"], "exponent"),
    (["--theorem", "markov-global-minima", "--param", "p=" + "1" * 500], "digits"),
    (["--theorem", "markov-local-minima", "--param", "d=10000"], "above the fast budget"),
    (["--theorem", "markov-local-minima", "--param", "d=١٢"], "is not an integer"),
    (["--theorem", "ical-one-step-gd", "--param", "d=10000"], "GiB"),
    (["--theorem", "ical-one-step-gd", "--param", "T=100000000"], "GiB"),
    (["--theorem", "topics-value-block-structure", "--param", "T=10000"], "GiB"),
    (["--theorem", "ntp-attention-max-margin", "--param", "K=1000", "--param",
      "orders=random"], "above the fast budget"),
    (["--theorem", "markov-global-minima", "--param", "p=1/2", "--param", "q=1/2"],
     "cannot decide the theorem here"),
    (["--theorem", "markov-local-minima", "--param", "p=0.5", "--param", "q=0.50001"],
     "cannot decide the theorem here"),
    (["--theorem", "markov-local-minima", "--seeds", "1000000000"], "seeds"),
    (["--theorem", "markov-local-minima", "--budget", "bogus"], "invalid choice"),
    (["--theorem", "markov-local-minima", "--device", "mps"], "invalid choice"),
    (["--theorem", "markov-local-minima", "--seeds", "1.5"], "invalid int"),
    ([], "one of the arguments"),
    (["--all", "--check-baseline", "--update-baseline"], "not allowed with"),
    (["sweep", "markov-local-minima"], "--grid"),
    (["sweep", "markov-local-minima", "--grid", "p=0:1:100000000"], "points"),
    (["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:5000", "--grid", "q=0.1:0.9:5000"],
     "points"),
    (["--theorem", "nope"], "unknown theorem id"),
    (["--theorem", "ntp-attention-max-margin", "--param", "orders= ; "], "lists no query"),
    (["--theorem", "ntp-attention-max-margin", "--param", "orders=0:"], "without a comparison"),
    (["--theorem", "ntp-attention-max-margin", "--param", "orders=0: 3>3"], "cycle 3 > 3"),
    (["--theorem", "ntp-attention-max-margin", "--param", "K=2", "--param", "orders=random"],
     "no constraint"),
    (["--theorem", "markov-local-minima", "--json", "/dev/full"], "No space left"),
    (["--theorem", "markov-higher-order", "--param", "kernel=1/2,1/2"], "needs 2^k = 4"),
    (["--theorem", "markov-higher-order", "--param", "kernel=1/5,4/5,1/5,4/5"],
     "cannot decide the theorem here"),
    (["--theorem", "markov-higher-order", "--param", "kernel=" + "9" * 500], "characters"),
]


@pytest.mark.parametrize(("argv", "message"), CASES)
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err + out
    assert len(lines[0]) < 400  # never a 400-digit echo of the input


@pytest.mark.parametrize(("argv", "message"), [CASES[0], CASES[7], CASES[12], CASES[22]])
def test_usage_errors_are_found_before_torch_is_imported(argv, message):
    """A fresh interpreter: the error comes out and torch was never imported (what makes a
    usage error fast; its time is measured in benchmarks/usage_errors.py)."""
    probe = ("import sys, runpy\nsys.argv = ['verify', *sys.argv[1:]]\ntry:\n"
             "    runpy.run_module('verify', run_name='__main__')\nexcept SystemExit as e:\n"
             "    assert 'torch' not in sys.modules, 'torch was imported'\n    raise\n")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_fifo_nobody_reads_is_refused_not_waited_on(capsys, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = main(["--theorem", "markov-local-minima", "--json", str(fifo)])
    assert code == 2 and "a pipe nobody reads" in capsys.readouterr().err


@given(st.text(max_size=30))
def test_any_text_as_a_parameter_is_handled(text):
    """Random text for p: a clear one-line exit 2, or (for a valid number) a plan."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--theorem", "markov-local-minima", "--param", f"p={text}",
                     "--param", "d=0"])  # d=0 is refused too: nothing ever trains here
    assert code == 2 and len(err.getvalue().strip().splitlines()) == 1
    assert "Traceback" not in err.getvalue()


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "verify", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in out.stdout.split()]


def _workers(pid: int) -> list[int]:
    """The pool's worker processes of ``pid`` (spawned interpreters)."""
    found = []
    for child in _children(pid):
        try:
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text(errors="replace"):
                found.append(child)
        except OSError:
            continue
    return found


def _gone(pids: list[int], seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    return not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize(("signum", "code", "group"), [(signal.SIGINT, 130, False),
                                                       (signal.SIGTERM, 143, False),
                                                       (signal.SIGTERM, 143, True)],
                         ids=["ctrl-c", "sigterm", "sigterm-as-timeout-sends-it"])
def test_an_interrupted_run_writes_an_incomplete_report(tmp_path, signum, code, group):
    """Stop `verify --all` while it trains: exit 130/143, one line, and a valid JSON report
    marked incomplete that holds what finished. `timeout` sends SIGTERM to the process and
    again to its process group (workers included), microseconds apart: one request, not the
    second signal that would exit at once."""
    report = tmp_path / "r.json"
    process = _start(["--all", "--workers", "2", "--json", str(report)], tmp_path)
    deadline = time.time() + 120  # the pool exists: the run, and so its report, has begun
    while time.time() < deadline and len(_workers(process.pid)) < 2:
        time.sleep(0.2)
    time.sleep(8)  # into the training runs; the first theorems finish about now
    process.send_signal(signum)
    if group:
        os.killpg(process.pid, signum)  # its own session: the group is the run's
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"still running 60 s after the signal; stderr:\n{process.communicate()[1]}")
    assert process.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("verify: ")
    data = json.loads(report.read_text())
    assert data["complete"] is False and data["passed"] is False
    assert all(t["checks"] for t in data["theorems"])


#: A run interrupted while its seeds train side by side on threads, through the console entry
#: point (``verify``'s own ``_main`` replaced by the threads and a Ctrl-C sent to itself once
#: they multiply matrices).
SIDE_BY_SIDE_INTERRUPT = """
import os, signal, sys, threading, time
import torch
from numerics.device import check_cancelled, run_concurrently
from verify import cli

started = threading.Barrier(3)

def job():
    started.wait()
    a = torch.randn(256, 256)
    while True:
        a = a @ a / 256
        check_cancelled()

def ctrl_c():
    started.wait()
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGINT)

def threads_then_interrupted(argv):
    torch.set_num_threads(2)
    sender = threading.Thread(target=ctrl_c)
    sender.start()
    try:
        run_concurrently([job, job], torch.device("cpu"))
    except KeyboardInterrupt:
        sender.join()
        print("verify: interrupted", file=sys.stderr)
        return 130
    return 0

cli._main = threads_then_interrupted
cli.console()
"""


def test_an_interrupt_of_runs_side_by_side_exits_130_not_an_abort(tmp_path):
    """torch's C++ teardown at exit aborted (exit 134, "terminate called without an active
    exception") after an interrupt had stopped runs on threads, in about one exit in three:
    after an interrupt the console entry point now runs the atexit handlers and exits without
    that teardown. Six tries (the old entry point passes all six about one time in ten)."""
    script = tmp_path / "interrupted.py"
    script.write_text(SIDE_BY_SIDE_INTERRUPT)
    for _ in range(6):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 130 and "terminate" not in done.stderr, done.stderr
        assert done.stderr.strip() == "verify: interrupted"


def _sweep_args(out: Path) -> list[str]:
    return ["sweep", "ntp-ffn-max-margin", "--grid", "eta0=1/4:1:6", "--workers", "2",
            "--out", str(out)]


@pytest.mark.parametrize(("signals", "code"), [((signal.SIGTERM,), 143),
                                               ((signal.SIGINT, signal.SIGINT), 130)])
def test_a_stopped_sweep_keeps_its_points_kills_its_workers_and_resumes(tmp_path, signals,
                                                                        code):
    """SIGTERM, or Ctrl-C pressed twice: exit within seconds, no worker left, every finished
    point kept and valid; a corrupt point is recomputed on resume, every point exactly once."""
    out = tmp_path / "sweep"
    process = _start(_sweep_args(out), tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "tasks").glob("*.json")):
        time.sleep(0.5)
    workers = _workers(process.pid)
    assert list((out / "tasks").glob("*.json")), "no point finished in two minutes"
    assert workers, "no worker process found"
    start = time.time()
    for signum in signals:
        process.send_signal(signum)
        time.sleep(0.2)
    _, err = process.communicate(timeout=30)
    # a second Ctrl-C may end the process by the signal itself: the shell shows that as 130 too
    assert process.returncode in (code, -signals[-1]) and time.time() - start < 5, err
    assert "Traceback" not in err
    assert _gone(workers, 5), "a worker outlived the sweep"
    kept = {p.name for p in (out / "tasks").glob("*.json")}
    for path in (out / "tasks").glob("*.json"):
        json.loads(path.read_text())  # atomic writes: never a truncated file
    first = sorted(kept)[0]
    (out / "tasks" / first).write_text('{"status": "pass')  # a corrupt point: recomputed
    again = subprocess.run([sys.executable, "-m", "verify", *_sweep_args(out)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert "unreadable result" in again.stderr and "Traceback" not in again.stderr
    records = json.loads((out / "sweep.json").read_text())["points"]
    assert len(records) == 6 and len({r["key"] for r in records}) == 6
    assert all(r["status"] in ("passed", "failed-checks") for r in records)
    held = all(r["status"] == "passed" for r in records)  # the exit code says whether it held
    assert again.returncode == (0 if held else 1), again.stderr


def test_sweep_workers_die_with_a_killed_parent(tmp_path):
    process = _start(_sweep_args(tmp_path / "sweep"), tmp_path)
    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.5)
        workers = _workers(process.pid)
    assert workers, "the pool never started"
    process.kill()
    process.communicate(timeout=30)
    assert _gone(workers, 10), "workers outlived a SIGKILLed parent"


SWEEP = ["sweep", "markov-local-minima", "--grid", "p=0.1:0.9:3"]


@pytest.mark.parametrize(("argv", "message"), [
    ([*SWEEP, "--grid", "p=0.2:0.8:2"], "--grid p is given twice"),
    ([*SWEEP, "--param", "p=0.7"], "p is both swept (--grid) and fixed (--param)"),
    ([*SWEEP, "--out", "/dev/null"], "--out /dev/null: not a directory"),
    ([*SWEEP, "--out", "probe.sh"], "--out probe.sh: not a directory"),
    ([*SWEEP, "--out", "results"], "--out results/sweep.csv: not a regular file"),
    ([*SWEEP, "--out", ""], "empty path"),
    ([*SWEEP, "--workers", "1000000"], "--workers must be at most 64"),
])
def test_sweep_usage_errors_come_before_torch(tmp_path, argv, message):
    """Found before the experiment (and so torch) is imported, nothing created."""
    (tmp_path / "probe.sh").write_text("echo hi\n")
    (tmp_path / "results" / "sweep.csv").mkdir(parents=True)
    probe = ("import sys, runpy\nsys.argv = ['verify', *sys.argv[1:]]\ntry:\n"
             "    runpy.run_module('verify', run_name='__main__')\nexcept SystemExit as e:\n"
             "    assert 'torch' not in sys.modules, 'torch was imported'\n    raise\n")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.sh", "results"]


def test_a_read_only_working_directory_is_refused_before_any_work(capsys, tmp_path,
                                                                  monkeypatch):
    """The default --out (sweeps/ID) below a directory that cannot be written."""
    import verify.files

    monkeypatch.chdir(tmp_path)
    writable = verify.files.os.access
    monkeypatch.setattr(verify.files.os, "access",
                        lambda path, mode: Path(path) != Path(".") and writable(path, mode))
    code = main(SWEEP)
    err = capsys.readouterr().err
    assert code == 2 and "--out sweeps/markov-local-minima: directory is not writable (.)" in err
    assert not list(tmp_path.iterdir())


#: The run of the output tests: a theorem of seconds, its report in r.json.
QUICK = ["--theorem", "ntp-ffn-max-margin", "--json", "r.json"]


def test_a_full_disk_on_standard_output_still_writes_the_report(tmp_path):
    """``verify ... >/dev/full``: one line, exit 2 (a result could not be written), and the
    JSON report is written all the same; ``--list`` too is one line."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "verify", *QUICK], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=300, cwd=tmp_path)
        listed = subprocess.run([sys.executable, "-m", "verify", "--list"], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    for run in (done, listed):
        assert run.returncode == 2 and run.stderr.strip() == (
            "verify: error: cannot write to standard output (No space left on device)")
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True


def test_a_closed_pipe_still_writes_the_report_and_exits_with_the_checks(tmp_path):
    """``verify ... | head -1``: the reader went away; the run finishes, writes its report
    and exits with its verdict (Rich's own handling exited 1 and wrote nothing)."""
    with subprocess.Popen([sys.executable, "-m", "verify", *QUICK], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read()
        process.wait(timeout=300)
    report = json.loads((tmp_path / "r.json").read_text())
    assert process.returncode == (0 if report["passed"] else 1) and not err.strip(), err


def test_an_ascii_terminal_gets_the_output_in_ascii(capsys, tmp_path):
    """PYTHONIOENCODING=ascii: what the encoding cannot hold becomes ``?``."""
    import io

    buffer = io.BytesIO()
    ascii_out = io.TextIOWrapper(buffer, encoding="ascii")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", ascii_out)
        code = main(["--theorem", "ntp-ffn-max-margin", "--json", str(tmp_path / "r.json")])
        ascii_out.flush()
    assert code == 0 and "Traceback" not in capsys.readouterr().err
    text = buffer.getvalue().decode("ascii")
    assert "ntp-ffn-max-margin: PASS" in text and "?" in text
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True


def test_ctrl_c_while_the_command_starts_is_one_line_130(capsys, monkeypatch):
    """An interrupt while the console is made (the first thing main does, before the papers
    load) is the one-line interrupt, not a traceback."""
    import rich.console

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rich.console, "Console", interrupted)
    assert main(["--list"]) == 130
    assert capsys.readouterr().err == "verify: interrupted\n"


def test_importing_the_command_loads_no_sympy():
    """Why a Ctrl-C in the first half second is handled: importing ``verify.cli`` (all that
    runs before main installs its handlers) no longer loads sympy or the papers."""
    done = subprocess.run([sys.executable, "-c", "import sys, verify.cli\n"
                           "assert 'sympy' not in sys.modules, 'sympy was imported'"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

