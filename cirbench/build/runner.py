"""Executes build jobs: in-process (--jobs 1, two overlapping threads), a spawn process pool (--jobs N) or Dask.

Jobs are submitted through a bounded window so memory stays flat for DF2K-sized builds and results stream back.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any

from cirbench.errors import CirbenchError, ConfigError


def overlap_executor() -> ThreadPoolExecutor:
    """--jobs 1: two threads in this process, so one entry's PNG encoding, hashing and writing overlaps the next
    entry's codec call; the codecs themselves take turns (jobs.CODEC_SLOT), so one codec runs at a time."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="cirbench-build")


def _parent_watch(parent: int, interval: float) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)  # the parent is gone (killed): nobody collects this worker's results


def die_with_parent(parent: int, interval: float = 0.5) -> None:
    """Pool-worker initializer: end this worker as soon as the build process that started it dies.

    On Linux the kernel sends SIGKILL at once (PR_SET_PDEATHSIG); elsewhere a daemon thread polls the parent.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # died before the signal was armed
        os._exit(1)
    threading.Thread(target=_parent_watch, args=(parent, interval), daemon=True, name="cirbench-parent-watch").start()


@contextlib.contextmanager
def open_executor(jobs: int, scheduler: str | None = None) -> Iterator[tuple[Executor, int]]:
    """The executor for ``jobs`` workers (or a Dask scheduler address) and its submission window; closed on exit."""
    if scheduler:
        with _dask_executor(scheduler) as opened:
            yield opened
        return
    if jobs == 1:
        executor = overlap_executor()
        try:
            yield executor, 2
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        return
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent, initargs=(os.getpid(),),
    )  # fmt: skip
    try:
        yield pool, 4 * jobs
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


SCHEDULER_FORMS = "tcp://HOST:PORT, tls://HOST:PORT, inproc://..., ucx://..., ws(s)://HOST:PORT or HOST:PORT"
_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


def check_scheduler(address: str) -> str:
    """``address`` if it has the form of a Dask scheduler address; ConfigError naming the valid forms."""
    scheme, sep, rest = address.partition("://")
    if sep:
        valid = scheme in _SCHEMES and bool(rest) and not any(c.isspace() for c in rest)
    else:
        host, colon, port = address.rpartition(":")
        valid = bool(colon and host and port.isdigit()) and not any(c.isspace() for c in address)
    if not valid:
        raise ConfigError(f"scheduler '{address}' is not a Dask scheduler address ({SCHEDULER_FORMS})")
    return address


def dask_client(scheduler: str) -> Any:
    """A connected ``distributed.Client``; one-line errors when Dask is missing or the scheduler unreachable."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise CirbenchError("--scheduler needs Dask: pip install 'cirbench[dist]'") from exc
    try:
        return Client(scheduler, timeout=30)
    except OSError as exc:
        raise CirbenchError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc


@contextlib.contextmanager
def _dask_executor(scheduler: str) -> Iterator[tuple[Executor, int]]:
    client = dask_client(scheduler)
    try:
        workers = max(1, sum(client.nthreads().values()))
        executor = client.get_executor()
        try:
            yield executor, 4 * workers
        finally:
            executor.shutdown(wait=True)
    finally:
        client.close()


def run_jobs(
    executor: Executor,
    function: Callable[[Any], Any],
    jobs: Iterable[Any],
    window: int,
    on_result: Callable[[Any], bool],
) -> bool:
    """Run ``function`` over ``jobs`` with at most ``window`` in flight; False once ``on_result`` asks to stop.

    ``on_result`` gets each job's return value as it completes; an exception raised inside a job (a bug,
    not a typed per-item error) propagates after in-flight jobs finish.
    """
    pending: set[Future] = set()
    keep_going = True

    def drain(block_until: str) -> None:
        nonlocal pending, keep_going
        done, pending = wait(pending, return_when=block_until)
        for future in done:
            if not on_result(future.result()):
                keep_going = False

    for job in jobs:
        if not keep_going:
            break
        pending.add(executor.submit(function, job))
        if len(pending) >= window:
            drain(FIRST_COMPLETED)
    while pending and keep_going:
        drain(FIRST_COMPLETED)
    for future in pending:
        future.cancel()
    if pending:
        wait(pending)
        for future in pending:
            if not future.cancelled() and future.exception() is None:
                on_result(future.result())
    return keep_going
