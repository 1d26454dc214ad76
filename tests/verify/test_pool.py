"""The worker pool's stop: killed workers never leave the parent waiting at exit."""

import subprocess
import sys
import textwrap
import time

import pytest

from verify.pool import process_pool, stop_workers

_SCRIPT = textwrap.dedent('''
    import sys
    import time

    from verify.pool import process_pool, stop_workers


    def large_result():
        time.sleep(0.3)
        return b"x" * 150_000_000  # sent as a header, then the body in a second write


    if __name__ == "__main__":
        pool = process_pool(1)
        future = pool.submit(large_result)
        manager = pool._executor_manager_thread
        deadline, hit = time.time() + 60, False
        while time.time() < deadline and not future.done() and not hit:
            frame = sys._current_frames().get(manager.ident)
            while frame is not None and not hit:
                hit, frame = frame.f_code.co_name == "_recv_bytes", frame.f_back
            time.sleep(0.0005)
        stop_workers(pool)  # the worker dies in the middle of sending its result
        print("mid-transfer" if hit else "missed", flush=True)
        sys.exit(130)
''')


def test_a_worker_killed_while_sending_its_result_does_not_hang_the_exit(tmp_path):
    """Ctrl-C while a worker sends a large verdict: the pool's manager thread is reading the
    message's body when the worker is killed. The parent must still exit (once it hung for
    ever in the interpreter's exit, joining that thread)."""
    script = tmp_path / "stop_mid_transfer.py"
    script.write_text(_SCRIPT)
    for _ in range(3):  # the poll can miss the transfer on a loaded machine: try again
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
        assert done.returncode == 130, done.stderr
        assert "Traceback" not in done.stderr and "leaked" not in done.stderr, done.stderr
        if done.stdout.strip() == "mid-transfer":
            return
    # three polls in a row missed a transfer of 150 MB (a starved machine): the exit was still
    # checked each time, but the case this test is about was never produced, so it is not
    # reported as passed
    pytest.skip("the worker was never caught in the middle of sending its result in 3 tries "
                "(the machine too loaded to poll every 0.5 ms); its exit was checked")


def test_stopping_a_pool_leaves_no_pipe_for_the_exit_hook_to_race_on():
    """After :func:`stop_workers` the pool's manager thread has ended and closed its wake-up
    pipe. Python 3.11's exit hook for process pools writes to that pipe without a lock; while
    the thread was still closing it, the write failed ("Bad file descriptor") and the
    interrupted ``verify --all --workers 2`` printed a traceback at exit."""
    pool = process_pool(1)
    future = pool.submit(time.sleep, 60)
    deadline = time.time() + 60
    while time.time() < deadline and not future.running():
        time.sleep(0.05)
    wakeup, manager = pool._executor_manager_thread_wakeup, pool._executor_manager_thread
    stop_workers(pool)
    assert not manager.is_alive() and wakeup._closed
