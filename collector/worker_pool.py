"""A pool of spawned worker processes, each behind its own pipe, that survives any one of them dying.

Why not `concurrent.futures.ProcessPoolExecutor`: its workers share one result pipe. A worker killed
(OOM killer, SIGKILL) half-way through writing a large result leaves a partial message in that pipe; the
executor's manager thread then blocks reading the rest forever, every pending future with it, and even
`shutdown()` and interpreter exit hang (reproduced on CPython 3.11: about one kill in five while workers
return megabyte results). Shared queues have the same flaw with their locks: a worker that dies holding
the reader lock stalls the others.

Here every worker has a pipe of its own, and the parent holds no copy of the worker's end, so a worker's
death is an end-of-file on its pipe at whatever point it happened: the tasks it held fail with
`WorkerLost`, the caller decides what to do with them (the collectors redo them in their own process),
and the slot spawns a new worker. A slot whose workers keep dying waits `restart_interval_s` between
restarts; when no slot has a live worker, `submit` raises `WorkerLost` at once instead of queueing.

Each slot keeps up to `tasks_in_flight` tasks in its worker's pipe, so the worker starts the next task as
soon as it returns a result instead of waiting for the parent (whose GIL is busy) to send it.

A worker that is alive but has been on one task for longer than `task_timeout_s` (stopped, swapping,
deadlocked in a C extension) is killed like a dead one: its task fails with `WorkerTimedOut`, so a caller
waiting on a future never waits forever.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from collector.worker_process import follow_parent

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_READY = "ready"
_QUEUE_POLL_S = 0.5  # how soon an idle slot notices that its worker died
_STOP_GRACE_S = 10.0


class WorkerLost(RuntimeError):
    """The worker process holding a task died (or none is alive) before the task's result came back."""


class WorkerTimedOut(WorkerLost):
    """The worker spent longer than the pool's task timeout on this task and was killed."""


# -- worker process side ----------------------------------------------------------------------------


def _worker_main(conn: Connection, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    follow_parent()
    try:
        initializer(*initargs)
    except BaseException:
        conn.send(("init-failed", traceback.format_exc()))
        return
    conn.send((_READY, None))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return  # the parent closed the pool or died
        if task is None:
            return
        fn, arg = task
        try:
            reply: tuple[bool, Any] = (True, fn(arg))
        except BaseException as exc:
            reply = (False, exc)
        try:
            conn.send(reply)
        except (OSError, EOFError):
            return
        except Exception as exc:  # the result or the exception would not pickle: nothing was written yet
            conn.send((False, RuntimeError(f"the task's {'result' if reply[0] else 'exception'} could not be "
                                           f"sent back: {type(exc).__name__}: {exc}")))


# -- parent side ------------------------------------------------------------------------------------


class _SlotState(Enum):
    STARTING = "starting"
    RUNNING = "running"
    BACKING_OFF = "backing off"
    STOPPED = "stopped"


@dataclass(eq=False)
class _Session:
    """One worker process's life in a slot."""

    process: BaseProcess
    conn: Connection
    inflight: deque[Future[Any]] = field(default_factory=deque)
    cond: threading.Condition = field(default_factory=threading.Condition)
    lost: bool = False
    # When the worker began the task at the head of `inflight`: it takes the next one from its pipe as soon
    # as it has sent a result.
    head_started: float = 0.0
    overran: Future[Any] | None = None  # the task the worker was killed for
    killed_after_s: float = 0.0


@dataclass(eq=False)
class _Slot:
    index: int
    state: _SlotState = _SlotState.STARTING
    session: _Session | None = None
    init_error: str | None = None
    restarted_at: float = float("-inf")
    thread: threading.Thread | None = None


_Task = tuple[Future[Any], Callable[[Any], Any], Any]


class WorkerPool:
    """`processes` spawned workers, each set up by `initializer(*initargs)`; `start()`/`stop()` bracket its life."""

    def __init__(
        self,
        *,
        processes: int,
        initializer: Callable[..., None],
        initargs: tuple[Any, ...] = (),
        name: str = "worker",
        restart_interval_s: float = 30.0,
        tasks_in_flight: int = 2,
        task_timeout_s: float | None = 120.0,
    ) -> None:
        """`task_timeout_s`: longest a worker may spend on one task before it is killed (None: no limit)."""
        if processes < 1:
            raise ValueError("a worker pool needs at least one process")
        if tasks_in_flight < 1:
            raise ValueError("tasks_in_flight must be at least 1")
        if task_timeout_s is not None and task_timeout_s <= 0:
            raise ValueError("task_timeout_s must be positive (or None for no limit)")
        self.processes = processes
        self._initializer = initializer
        self._initargs = initargs
        self._name = name
        self._restart_interval_s = restart_interval_s
        self._tasks_in_flight = tasks_in_flight
        self._task_timeout_s = task_timeout_s
        self._context = multiprocessing.get_context("spawn")  # fork would copy chDB's and other threads' state
        self._lock = threading.Condition()
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._slots: list[_Slot] = []
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        return bool(self._slots) and not self._stopping.is_set()

    def start(self, *, wait: bool = False) -> None:
        """Spawn the workers; `wait`: until each has run its initializer (seconds under load)."""
        with self._lock:
            if self._slots:
                return
            self._stopping.clear()
            self._tasks = queue.SimpleQueue()  # no stop sentinels left over from an earlier run
            self._slots = [_Slot(i) for i in range(self.processes)]
            for slot in self._slots:
                slot.thread = threading.Thread(target=self._run_slot, args=(slot,), daemon=True,
                                               name=f"llmpulse-{self._name}-{slot.index}")
                slot.thread.start()
            if wait:
                self._lock.wait_for(lambda: all(s.state is not _SlotState.STARTING for s in self._slots))
                errors = [s.init_error for s in self._slots if s.init_error]
                if len(errors) == len(self._slots):
                    raise RuntimeError(f"no {self._name} process could start:\n{errors[0]}")

    def stop(self) -> None:
        """Let tasks already in a worker finish, cancel queued ones, and end the workers."""
        with self._lock:
            slots, self._slots = self._slots, []
            self._stopping.set()
            self._lock.notify_all()
        self._fail_queued(cancel=True)
        for _ in slots:
            self._tasks.put(None)
        deadline = time.monotonic() + _STOP_GRACE_S
        for slot in slots:
            if slot.thread is not None:
                slot.thread.join(max(0.0, deadline - time.monotonic()))
            session = slot.session
            if session is not None and session.process.is_alive():
                session.process.kill()  # stuck in a task past the grace period
                session.process.join(1.0)
        self._fail_queued(cancel=True)

    def submit(self, fn: Callable[[T], R], arg: T) -> Future[R]:
        """Run `fn(arg)` in a worker; `fn` must be a module-level function (it is pickled by name)."""
        with self._lock:
            if not self._slots or self._stopping.is_set():
                raise RuntimeError(f"the {self._name} pool is not started")
            if all(s.state in (_SlotState.BACKING_OFF, _SlotState.STOPPED) for s in self._slots):
                raise WorkerLost(f"no {self._name} process is alive (restarting at most every "
                                 f"{self._restart_interval_s:g} s)")
            future: Future[R] = Future()
            self._tasks.put((future, fn, arg))
        return future

    def worker_pids(self) -> list[int]:
        """PIDs of the live workers (for diagnostics and benchmarks)."""
        with self._lock:
            sessions = [s.session for s in self._slots if s.state is _SlotState.RUNNING and s.session is not None]
        return [s.process.pid for s in sessions if s.process.pid is not None and s.process.is_alive()]

    # -- one thread per slot: spawn, feed, respawn -------------------------------------------------

    def _run_slot(self, slot: _Slot) -> None:
        first = True
        while not self._stopping.is_set():
            if not first:
                # A worker that dies now and then is replaced at once; one that keeps dying (or failing to
                # start) is replaced at most every restart interval, meanwhile its tasks go elsewhere.
                delay = slot.restarted_at + self._restart_interval_s - time.monotonic()
                if delay > 0:
                    self._set_state(slot, _SlotState.BACKING_OFF)
                    self._fail_queued_if_no_worker()
                    if self._stopping.wait(delay):
                        break
                slot.restarted_at = time.monotonic()
            first = False
            session = self._spawn(slot)
            if session is not None:
                receiver = threading.Thread(target=self._receive, args=(session,), daemon=True,
                                            name=f"llmpulse-{self._name}-{slot.index}-results")
                receiver.start()
                self._feed(session)
                receiver.join(_STOP_GRACE_S if self._stopping.is_set() else None)
                session.process.join(1.0)
                if self._stopping.is_set():
                    break
                log.warning("a %s process (pid %s) died with exit code %s; starting another",
                            self._name, session.process.pid, session.process.exitcode)
        self._set_state(slot, _SlotState.STOPPED)

    def _spawn(self, slot: _Slot) -> _Session | None:
        """A new worker for the slot, once it has run its initializer; None if it failed to."""
        self._set_state(slot, _SlotState.STARTING)
        parent_end, worker_end = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_worker_main, args=(worker_end, self._initializer, self._initargs),
                                        name=f"llmpulse-{self._name}-{slot.index}", daemon=True)
        process.start()
        worker_end.close()  # the worker's end lives only in the worker: its death is an EOF here
        slot.session = _Session(process, parent_end)
        try:
            while not parent_end.poll(0.2):
                if self._stopping.is_set() or not process.is_alive():
                    raise EOFError
            kind, detail = parent_end.recv()
        except (EOFError, OSError):
            kind, detail = "init-failed", f"the process exited (code {process.exitcode}) while starting"
        if kind != _READY:
            if not self._stopping.is_set():
                log.error("a %s process failed to start: %s", self._name, detail)
            process.kill()
            process.join(1.0)
            parent_end.close()
            slot.init_error = str(detail)
            slot.session = None
            self._set_state(slot, _SlotState.BACKING_OFF)
            return None
        slot.init_error = None
        self._set_state(slot, _SlotState.RUNNING)
        return slot.session

    def _feed(self, session: _Session) -> None:
        """Hand queued tasks to this session's worker, keeping at most `tasks_in_flight` in its pipe."""
        while True:
            with session.cond:
                session.cond.wait_for(lambda: len(session.inflight) < self._tasks_in_flight or session.lost)
                if session.lost:
                    return
            try:
                task = self._tasks.get(timeout=_QUEUE_POLL_S)
            except queue.Empty:
                continue
            if task is None:
                self._end_session(session)
                return
            future, fn, arg = task
            with session.cond:
                if session.lost:
                    self._tasks.put(task)  # for another slot, or this one's next worker
                    return
                if not future.set_running_or_notify_cancel():
                    continue
                if not session.inflight:
                    session.head_started = time.monotonic()
                session.inflight.append(future)
            try:
                session.conn.send((fn, arg))
            except (OSError, EOFError):
                return  # the worker is gone; the receiver fails what it held, this task included
            except Exception as exc:  # the task would not pickle; nothing reached the pipe
                with session.cond:
                    session.inflight.remove(future)
                    session.cond.notify_all()
                future.set_exception(exc)

    def _end_session(self, session: _Session) -> None:
        """Let the worker finish what it holds, then tell it to exit."""
        with session.cond:
            session.cond.wait_for(lambda: not session.inflight or session.lost, timeout=_STOP_GRACE_S)
        with contextlib.suppress(OSError, EOFError):  # already gone
            session.conn.send(None)

    def _receive(self, session: _Session) -> None:
        while True:
            try:
                self._await_reply(session)
                ok, value = session.conn.recv()
            except (EOFError, OSError):
                with session.cond:
                    session.lost = True
                    orphans = list(session.inflight)
                    session.inflight.clear()
                    session.cond.notify_all()
                session.process.join(1.0)  # for its exit code
                self._fail_orphans(session, orphans)
                session.conn.close()
                return
            with session.cond:
                future = session.inflight.popleft()
                session.head_started = time.monotonic()
                session.cond.notify_all()
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _await_reply(self, session: _Session) -> None:
        """Return once the worker has written something (or died); kill it if it overruns the task timeout."""
        timeout = self._task_timeout_s
        if timeout is None:
            return  # recv() blocks until a reply or the worker's death
        while not session.conn.poll(_QUEUE_POLL_S):
            with session.cond:
                head = session.inflight[0] if session.inflight else None
                busy_for = time.monotonic() - session.head_started if head is not None else 0.0
            if busy_for > timeout:
                session.overran, session.killed_after_s = head, busy_for
                log.error("a %s process (pid %s) has spent %.0f s on one task (limit %g s); killing it",
                          self._name, session.process.pid, busy_for, timeout)
                session.process.kill()
                return  # its end of the pipe closes with it: the recv() that follows raises EOFError

    def _fail_orphans(self, session: _Session, orphans: list[Future[Any]]) -> None:
        pid, code = session.process.pid, session.process.exitcode
        for future in orphans:
            if future is session.overran:
                future.set_exception(WorkerTimedOut(
                    f"the {self._name} process (pid {pid}) was killed after {session.killed_after_s:.0f} s on "
                    f"this task (limit {self._task_timeout_s:g} s)"))
            elif session.overran is not None:
                future.set_exception(WorkerLost(f"the {self._name} process (pid {pid}) was killed for overrunning "
                                                f"another task before it got to this one"))
            else:
                future.set_exception(WorkerLost(f"the {self._name} process (pid {pid}) died "
                                                f"(exit code {code}) before returning this task's result"))

    def _set_state(self, slot: _Slot, state: _SlotState) -> None:
        with self._lock:
            slot.state = state
            self._lock.notify_all()

    def _fail_queued_if_no_worker(self) -> None:
        with self._lock:
            if any(s.state in (_SlotState.STARTING, _SlotState.RUNNING) for s in self._slots):
                return
        self._fail_queued(cancel=False)

    def _fail_queued(self, *, cancel: bool) -> None:
        requeue_sentinels = 0
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is None:
                requeue_sentinels += 1
                continue
            future = task[0]
            if cancel:
                future.cancel()
            elif future.set_running_or_notify_cancel():
                future.set_exception(WorkerLost(f"no {self._name} process is alive to run this task"))
        for _ in range(requeue_sentinels):
            self._tasks.put(None)
