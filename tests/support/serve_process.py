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
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """A running `llmpulse serve`: its process, base URL and an admin key for its API (None with auth disabled)."""

    process: subprocess.Popen[bytes]
    base: str
    key: str | None
    headers: dict[str, str] = field(default_factory=dict)


def create_key(workdir: Path, env: Mapping[str, str], name: str, scope: str, *apps: str) -> str:
    """`llmpulse keys create` on the store `env` names, as a user would before starting the server."""
    app_args = [arg for app in apps for arg in ("--app", app)]
    created = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "keys", "create", name, "--scope", scope, *app_args],
        env={**os.environ, **env},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if created.returncode != 0:
        raise RuntimeError(f"llmpulse keys create failed ({created.returncode}):\n{created.stderr[-3000:]}")
    return created.stdout.strip()


def _auth_disabled(env: Mapping[str, str]) -> bool:
    return env.get("LLMPULSE_AUTH_DISABLED", "").strip().lower() in {"1", "true", "yes", "on"}


def start_serve(
    workdir: Path, env: Mapping[str, str], *, start_timeout_s: float = 90, admin_key: bool = True
) -> Served:
    """Start `llmpulse serve` with `env` added to ours; returns once it is healthy.

    With auth on (the default) and `admin_key`, an admin key is created on the store first (chDB: one process per
    store, so before the server holds it). Output goes to workdir/serve.log, which a start-up failure quotes.
    """
    key = create_key(workdir, env, "tests-admin", "admin") if admin_key and not _auth_disabled(env) else None
    port = free_port()
    log_path = workdir / "serve.log"
    # The OTLP/gRPC receiver's default port (4317) is one per machine: tests that want it pass their own.
    env = {"LLMPULSE_OTLP_GRPC_PORT": "0", **env}
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
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                return Served(process=process, base=base, key=key, headers=headers)
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"llmpulse serve did not come up:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


@contextmanager
def running_serve(
    workdir: Path, env: Mapping[str, str], *, start_timeout_s: float = 90, admin_key: bool = True
) -> Iterator[Served]:
    """`start_serve`, yield it, then stop it gracefully (a shutdown failure quotes serve.log)."""
    served = start_serve(workdir, env, start_timeout_s=start_timeout_s, admin_key=admin_key)
    try:
        yield served
    finally:
        served.process.terminate()
        # uvicorn re-raises SIGTERM after a graceful shutdown, so -15 is a clean exit too.
        code = served.process.wait(60)
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
