"""What every spawned worker process of the collector does first: live and die with its parent.

The worker pools (HTTP validation, Kafka batch preparation; see collector/worker_pool.py) spawn their
processes. A worker busy with a task would otherwise outlive a parent killed with SIGKILL until the task
ends, and would die half-way through a task on the Ctrl-C that reaches the whole process group, while the
parent still wants to drain its work and stop them itself.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def follow_parent() -> None:
    """Ignore SIGINT (the parent stops its workers) and exit as soon as the parent process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), name="parent-watch", daemon=True).start()
