"""numerics.device.run_concurrently: independent jobs side by side on the CPU's threads."""

import _thread
import signal
import threading

import pytest
import torch

from numerics.device import RunCancelled, check_cancelled, run_concurrently


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _product(seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(64, 64, generator=gen, dtype=torch.float64)
    return float((a @ a.T).trace())


def test_results_come_back_in_job_order_with_one_thread_each(two_threads, cpu):
    seen_threads = []

    def job(seed):
        seen_threads.append(torch.get_num_threads())
        return seed, _product(seed)

    results = run_concurrently([lambda s=s: job(s) for s in range(5)], cpu)
    assert results == [(s, _product(s)) for s in range(5)]
    assert seen_threads == [1] * 5  # each job single-threaded
    assert torch.get_num_threads() == 2  # restored


def test_one_thread_runs_the_jobs_in_order_in_the_callers_thread(cpu):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        order = []
        run_concurrently([lambda i=i: order.append((i, threading.current_thread()))
                          for i in range(3)], cpu)
    finally:
        torch.set_num_threads(threads)
    assert [i for i, _ in order] == [0, 1, 2]
    assert {thread for _, thread in order} == {threading.current_thread()}


def test_a_failing_job_stops_the_others_and_its_error_is_raised(two_threads, cpu):
    """The long job polls check_cancelled (as the trainer does at every sync): it stops once
    the failing job has raised, and the caller sees the real error, not the cancellation."""
    started = threading.Event()
    polls = []

    def long_job():
        started.set()
        for _ in range(10_000):
            polls.append(1)
            check_cancelled()
            threading.Event().wait(0.001)
        return "finished"

    def failing_job():
        started.wait(5)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_concurrently([long_job, failing_job], cpu)
    assert len(polls) < 10_000  # cancelled, not run to the end


def test_check_cancelled_is_a_no_op_outside_a_job():
    check_cancelled()  # the caller's own thread has no stop event
    assert issubclass(RunCancelled, RuntimeError)


@pytest.fixture
def ctrl_c_raises():
    """Python's own SIGINT handler, whatever this process inherited: a shell starts background
    jobs with SIGINT ignored, and interrupt_main then does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is not None:  # None: a handler not installed from Python, nothing to restore
        signal.signal(signal.SIGINT, previous)


def test_an_interrupt_stops_the_jobs_before_it_is_raised_again(two_threads, ctrl_c_raises, cpu):
    """Ctrl-C (here raised in the caller's thread by a job) sets the stop event; the jobs end
    at their next check_cancelled, all before the interrupt reaches the caller (a job thread
    still inside a torch kernel at interpreter exit would abort the process), and the thread
    count is restored."""
    job_threads = []

    def polling_job():
        job_threads.append(threading.current_thread())
        for _ in range(10_000):
            check_cancelled()
            _product(0)
        return "finished"

    def interrupting_job():
        job_threads.append(threading.current_thread())
        _thread.interrupt_main()
        return polling_job()

    with pytest.raises(KeyboardInterrupt):
        run_concurrently([polling_job, interrupting_job, polling_job], cpu)
    assert job_threads and not any(thread.is_alive() for thread in job_threads)
    assert torch.get_num_threads() == 2
