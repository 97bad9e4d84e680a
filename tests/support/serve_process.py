"""`llmpulse serve` in a process of its own (its own embedded store), for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(
    workdir: Path, env: Mapping[str, str], *, start_timeout_s: float = 90
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `llmpulse serve` with `env` added to ours; (the process, its base URL) once it is healthy.

    Output goes to workdir/serve.log, which a start-up failure quotes.
    """
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmpulse.cli", "serve", "--port", str(port)],
            env={**os.environ, **env},
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + start_timeout_s
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"llmpulse serve did not come up:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


@contextmanager
def running_serve(workdir: Path, env: Mapping[str, str], *, start_timeout_s: float = 90) -> Iterator[str]:
    """`start_serve`, yield the base URL, then stop it gracefully (a shutdown failure quotes serve.log)."""
    process, base = start_serve(workdir, env, start_timeout_s=start_timeout_s)
    try:
        yield base
    finally:
        process.terminate()
        # uvicorn re-raises SIGTERM after a graceful shutdown, so -15 is a clean exit too.
        code = process.wait(60)
    log_text = (workdir / "serve.log").read_text()
    if code not in (0, -15) or "Application shutdown complete" not in log_text:
        raise RuntimeError(f"llmpulse serve did not shut down cleanly ({code}):\n{log_text[-3000:]}")


def post_concurrently(
    url: str, bodies: list[bytes], headers: Mapping[str, str], clients: int, check: Callable[[httpx.Response], None]
) -> float:
    """POST every body, `clients` at a time; returns the wall time until the last response."""
    lock = threading.Lock()
    queue = list(bodies)

    def worker() -> None:
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop(0)
                check(client.post(url, content=body, headers=dict(headers)))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started
