"""Where a study's runs execute: joblib processes on this machine, or a Ray or Dask cluster.

This machine and Dask go through joblib (loky, and Dask's own joblib backend);
Ray through its task API, because Ray's joblib backend cannot yield results as
runs finish. No scheduler of ours either way. What is ours: a reachability
check before connecting, because ``ray.init`` waits for minutes on an address
where nothing listens.
"""
from __future__ import annotations

import logging
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator
from urllib.parse import urlsplit

from .errors import ClusterError, MissingDependencyError, UsageError

BACKENDS = ("local", "ray", "dask")
CONNECT_TIMEOUT_S = 5.0


@dataclass
class Backend:
    name: str              # "loky", "dask" (joblib backends) or "ray"
    n_jobs: int            # default runs at a time: 1 locally, the whole cluster (-1) otherwise
    threads_per_run: bool  # set torch threads from this machine's cores (local only; clusters set their own)
    where: str             # for messages

    def map_unordered(self, fn: Callable, calls: list[tuple], n_jobs: int) -> Iterator:
        """``fn(*args)`` for each args in ``calls``, at most ``n_jobs`` at a time (-1: no limit),
        yielding results as they finish."""
        if self.name == "ray":
            yield from _ray_map_unordered(fn, calls, n_jobs)
            return
        from joblib import Parallel, delayed

        with _termination_as_interrupt():
            yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(delayed(fn)(*a) for a in calls)


@contextmanager
def _termination_as_interrupt():
    """SIGTERM (``kill PID``) stops a study as Ctrl-C does. joblib kills loky's workers when the main process is
    interrupted, but SIGTERM would end the main process alone, leaving its workers running runs nobody waits for
    (and holding a pretraining's cache lock, so the next study waits for them)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


LOCAL = Backend("loky", 1, True, "this machine")


def _ray_map_unordered(fn, calls, n_jobs):
    import ray

    task = ray.remote(num_cpus=1)(fn)
    waiting, running = list(calls), []
    while waiting or running:
        while waiting and (n_jobs < 1 or len(running) < n_jobs):
            running.append(task.remote(*waiting.pop(0)))
        done, running = ray.wait(running, num_returns=1)
        yield ray.get(done[0])


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if not parts.hostname:
        raise UsageError(f"cluster address {address!r} has no host; give HOST:PORT")
    try:
        return parts.hostname, parts.port or default_port
    except ValueError:
        raise UsageError(f"cluster address {address!r} has a bad port; give HOST:PORT") from None


def check_reachable(address: str, what: str, default_port: int, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds, with one line, when nothing listens at ``address``."""
    host, port = _host_port(address, default_port)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"cannot reach the {what} at {address} ({reason}); check the address and that "
                           "the cluster is running, or leave out --backend to run on this machine") from None


def _require(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"--backend {extra} needs {extra}: pip install \"alplug[{extra}]\"") from None


@contextmanager
def study_backend(name: str = "local", address: str | None = None):
    """Connect to the backend, make it joblib's active one, and yield a ``Backend``; disconnect after."""
    from joblib import parallel_config

    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    if name == "local":
        if address:
            raise UsageError("--address and --scheduler need --backend ray or --backend dask")
        yield LOCAL  # joblib's default backend, loky
        return
    if name == "ray":
        ray = _require("ray", "ray")
        if address and address not in ("auto", "local"):
            check_reachable(address, "Ray cluster", 6379 if not address.startswith("ray://") else 10001)
        # Without --address Ray joins the cluster in RAY_ADDRESS or started on this machine, else starts one.
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}".splitlines()[0]) from None
        try:
            yield Backend("ray", -1, False, f"Ray cluster {address or '(local)'}")
        finally:
            ray.shutdown()
        return
    _require("distributed", "dask")
    from distributed import Client

    if not address:
        raise UsageError("--backend dask needs --scheduler tcp://HOST:8786 (start one with `dask scheduler` "
                         "and workers with `dask worker HOST:8786`)")
    check_reachable(address, "Dask scheduler", 8786)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise ClusterError(f"cannot connect to the Dask scheduler at {address} ({exc})") from None
    try:
        with parallel_config(backend="dask"):
            yield Backend("dask", -1, False, f"Dask scheduler {address}")
    finally:
        client.close()
