"""The worker pool behind Kafka batch preparation and HTTP validation: a worker may die at any moment."""

from __future__ import annotations

import os
import signal
import struct
import sys
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, wait

import pytest

from collector.worker_pool import WorkerLost, WorkerPool, WorkerTimedOut

# -- what the workers run (module level: tasks are pickled by name) ---------------------------------

_setting: str = "unset"


def _configure(value: str) -> None:
    global _setting
    _setting = value


def _fail_to_start() -> None:
    raise ValueError("the price catalog is unreadable")


def _echo(value: object) -> tuple[int, str, object]:
    return os.getpid(), _setting, value


def _big(size: int) -> bytes:
    return b"x" * size


def _raise(message: str) -> None:
    raise KeyError(message)


def _unpicklable(_: object) -> object:
    return lambda: None


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _die(_: object) -> None:
    os._exit(137)


def _die_half_way_through_the_result(_: object) -> None:
    # What a SIGKILL during a large result leaves: a message header and a part of the message. The pipe is
    # the `conn` of the worker's main loop, the caller of this task.
    conn = sys._getframe(1).f_locals["conn"]
    os.write(conn.fileno(), struct.pack("!i", 10_000_000) + b"\x80\x05" + b"x" * 30_000)
    os._exit(137)


def both_running(pool: WorkerPool, *, not_pid: int | None = None) -> None:
    deadline = time.monotonic() + 60
    while len(pids := pool.worker_pids()) < 2 or not_pid in pids:
        assert time.monotonic() < deadline, "the pool did not replace its dead worker"
        time.sleep(0.05)


# -- tests ----------------------------------------------------------------------------------------


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    pool = WorkerPool(processes=2, initializer=_configure, initargs=("configured",), name="test",
                      restart_interval_s=60.0)
    pool.start(wait=True)
    yield pool
    pool.stop()


def test_tasks_run_in_initialised_workers_and_errors_come_back_as_raised(pool: WorkerPool) -> None:
    futures = [pool.submit(_echo, i) for i in range(50)]
    results = [f.result(timeout=30) for f in futures]
    assert [value for _, _, value in results] == list(range(50))
    assert {setting for _, setting, _ in results} == {"configured"}
    assert {pid for pid, _, _ in results} <= set(pool.worker_pids())
    assert os.getpid() not in pool.worker_pids()
    with pytest.raises(KeyError, match="no such model"):
        pool.submit(_raise, "no such model").result(timeout=30)
    with pytest.raises(RuntimeError, match="could not be sent back"):
        pool.submit(_unpicklable, None).result(timeout=30)
    assert pool.submit(_echo, "still serving").result(timeout=30)[2] == "still serving"


def test_a_worker_dying_half_way_through_a_result_fails_that_task_only(pool: WorkerPool) -> None:
    before = set(pool.worker_pids())
    doomed = pool.submit(_die_half_way_through_the_result, None)
    with pytest.raises(WorkerLost, match="died"):
        doomed.result(timeout=30)
    # The slot starts another worker; the pool keeps serving meanwhile, and stops promptly.
    results = [pool.submit(_echo, i).result(timeout=60) for i in range(20)]
    assert [value for _, _, value in results] == list(range(20))
    both_running(pool)
    assert set(pool.worker_pids()) != before


def test_workers_killed_while_returning_large_results_never_leave_a_task_hanging() -> None:
    # ProcessPoolExecutor hung for good on about one kill in five of this; every task here ends either way.
    pool = WorkerPool(processes=2, initializer=_configure, initargs=("x",), name="test", restart_interval_s=0.1)
    pool.start(wait=True)
    try:
        lost = 0
        victim = None
        for _ in range(6):
            both_running(pool, not_pid=victim)
            futures = [pool.submit(_big, 4_000_000) for _ in range(40)]
            wait(futures[:3], timeout=60)  # results are flowing back: the kill lands in the middle of them
            victim = pool.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            _, not_done = wait(futures, timeout=60)
            assert not not_done, f"{len(not_done)} tasks left hanging after a worker was killed"
            outcomes = [f.exception() for f in futures]
            assert all(e is None or isinstance(e, WorkerLost) for e in outcomes), outcomes
            assert sum(e is None for e in outcomes) >= 20  # the other worker kept going
            lost += sum(e is not None for e in outcomes)
        assert lost > 0, "no kill caught a worker with tasks in hand: the test did not test anything"
        both_running(pool, not_pid=victim)
        assert pool.submit(_big, 10).result(timeout=60) == b"x" * 10
    finally:
        pool.stop()


def test_workers_that_keep_dying_are_restarted_at_most_once_per_interval() -> None:
    pool = WorkerPool(processes=1, initializer=_configure, initargs=("x",), name="test", restart_interval_s=3.0)
    pool.start(wait=True)
    try:
        with pytest.raises(WorkerLost):
            pool.submit(_die, None).result(timeout=30)
        # The first death is replaced at once ...
        with pytest.raises(WorkerLost):
            pool.submit(_die, None).result(timeout=30)
        # ... a second one within the interval is not: the caller hears at once that nobody can take work.
        deadline = time.monotonic() + 10
        while True:
            try:
                queued: Future[object] = pool.submit(_echo, "too early")
            except WorkerLost as exc:
                assert "no test process is alive" in str(exc)
                break
            assert time.monotonic() < deadline, "the pool kept accepting work with no worker alive"
            # Queued just before the slot noticed: failed, not left waiting out the interval.
            with pytest.raises(WorkerLost):
                queued.result(timeout=30)
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while not pool.worker_pids():
            assert time.monotonic() < deadline, "no worker came back after the restart interval"
            time.sleep(0.1)
        assert pool.submit(_echo, "back").result(timeout=30)[2] == "back"
    finally:
        pool.stop()


def test_a_worker_stuck_on_one_task_is_killed_after_the_task_timeout_and_replaced() -> None:
    pool = WorkerPool(processes=1, initializer=_configure, initargs=("x",), name="test", restart_interval_s=60.0,
                      task_timeout_s=1.0)
    pool.start(wait=True)
    try:
        # The limit is per task: tasks that each stay under it pass, however long the queue takes together.
        assert [f.result(timeout=30) for f in [pool.submit(_sleep, 0.6) for _ in range(4)]] == [0.6] * 4
        stuck_pid = pool.worker_pids()[0]
        stuck = pool.submit(_sleep, 3600.0)
        behind = pool.submit(_echo, "queued behind the stuck task")
        with pytest.raises(WorkerTimedOut, match=rf"pid {stuck_pid}\) was killed after \d+ s on this task"):
            stuck.result(timeout=30)
        with pytest.raises(WorkerLost, match="killed for overrunning another task") as lost:
            behind.result(timeout=30)
        assert not isinstance(lost.value, WorkerTimedOut)
        pid, _, value = pool.submit(_echo, "after").result(timeout=60)
        assert value == "after" and pid != stuck_pid
    finally:
        pool.stop()


def test_a_worker_that_cannot_start_says_why() -> None:
    pool = WorkerPool(processes=1, initializer=_fail_to_start, name="test", restart_interval_s=60.0)
    try:
        with pytest.raises(RuntimeError, match="the price catalog is unreadable"):
            pool.start(wait=True)
    finally:
        pool.stop()


def test_stop_finishes_running_tasks_cancels_queued_ones_and_refuses_more() -> None:
    pool = WorkerPool(processes=1, initializer=_configure, initargs=("x",), name="test", tasks_in_flight=1)
    pool.start(wait=True)
    running = pool.submit(_sleep, 0.5)
    time.sleep(0.2)
    queued = [pool.submit(_sleep, 0.0) for _ in range(3)]
    started = time.monotonic()
    pool.stop()
    assert time.monotonic() - started < 10
    assert running.result(timeout=0) == 0.5
    for future in queued:
        with pytest.raises(CancelledError):
            future.result(timeout=0)
    assert not pool.running and pool.worker_pids() == []
    with pytest.raises(RuntimeError, match="not started"):
        pool.submit(_echo, 1)
