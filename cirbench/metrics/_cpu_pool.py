"""Band-parallel CPU work for the pixel metrics: Python threads that each run torch single-threaded.

Many small in-place ops split over OpenMP threads stall whenever another thread of the process (a PNG decoder)
holds a core; whole bands on separate threads do not. Results are combined in band order, so they are
identical to a sequential run, bit for bit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _single_threaded_worker() -> None:
    torch.set_num_threads(1)  # OpenMP's thread count is per thread: this worker's only


def _pool_for(threads: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool[0] != threads:
            if _pool is not None:
                _pool[1].shutdown(wait=False)
            main_threads = torch.get_num_threads()
            executor = ThreadPoolExecutor(threads, "cirbench-bands", initializer=_single_threaded_worker)
            barrier = threading.Barrier(threads)  # start every worker now, so its initializer has run ...
            list(executor.map(lambda _: barrier.wait(), range(threads)))
            _pool = (threads, executor)
            torch.set_num_threads(main_threads)  # ... before the default for new threads is set back
        return _pool[1]


def map_bands(work: Callable[[T], R], items: Sequence[T], device: torch.device) -> list[R]:
    """``[work(item) for item in items]``; on CPU with several torch threads, the items run on that many threads."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2 or len(items) < 2 or threading.current_thread().name.startswith(
        "cirbench-bands"
    ):
        return [work(item) for item in items]
    return list(_pool_for(threads).map(work, items))
