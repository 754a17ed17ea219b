"""Decoding (HR, LQ) batches for evaluate: protocol crop, same-shape batching, background prefetch.

Batches stay uint8 until they reach the model's device, so host-to-device copies are 4x smaller.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from cirbench.dataset.reader import BuiltDataset, DatasetError, read_rgb
from cirbench.evaluation.protocols import get_protocol
from cirbench.tasks import Task

# Pillow releases the GIL while decoding PNGs, so threads decode in parallel
WORKERS = max(2, min(8, os.cpu_count() or 2))


@dataclass
class Batch:
    """Same-shape images of one task: uint8 [B,3,H,W] HR and LQ after the protocol's crop."""

    task: Task
    stems: list[str]
    hr: torch.Tensor
    lq: torch.Tensor


def plan_batches(ds: BuiltDataset, stems: list[str], protocol: str, batch: int) -> list[list[str]]:
    """Chunks of at most ``batch`` images of one shape (after the protocol's crop), in a stable order."""
    from PIL import Image

    by_shape: dict[tuple[int, int], list[str]] = {}
    for stem in stems:
        with Image.open(ds.hr_path(stem)) as image:
            width, height = image.size
        by_shape.setdefault(get_protocol(protocol).region_shape(height, width, stem), []).append(stem)
    chunks = []
    for shape in sorted(by_shape):
        group = by_shape[shape]
        chunks += [group[i : i + batch] for i in range(0, len(group), batch)]
    return chunks


HR_CACHE_BYTES = 512 << 20  # decoded HR images kept for the later tasks of one evaluate call


class HRCache:
    """Decoded HR images shared by the tasks of one evaluate call, so an image's HR is decoded once, not once per
    task. The first images that fit in ``budget`` bytes stay (every task visits the images in one order, so an
    LRU cache smaller than the set would never hit). Thread-safe; the arrays are never written to."""

    def __init__(self, budget: int = HR_CACHE_BYTES) -> None:
        self.budget, self.used = budget, 0
        self._images: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def read(self, ds: BuiltDataset, stem: str) -> np.ndarray:
        with self._lock:
            image = self._images.get(stem)
        if image is not None:
            return image
        image = read_rgb(ds.hr_path(stem))
        with self._lock:
            if stem not in self._images and self.used + image.nbytes <= self.budget:
                image.flags.writeable = False
                self._images[stem] = image
                self.used += image.nbytes
        return image


def load_batch(ds: BuiltDataset, task: Task, stems: list[str], protocol: str, pin: bool,
               cache: HRCache | None = None) -> Batch:  # fmt: skip
    hrs, lqs = [], []
    region = get_protocol(protocol).region
    for stem in stems:
        hr = cache.read(ds, stem) if cache is not None else read_rgb(ds.hr_path(stem))
        lq = read_rgb(ds.lq_path(task, stem))
        if hr.shape != lq.shape:
            raise DatasetError(f"{ds.lq_path(task, stem)} is {lq.shape[:2]}, its HR image is {hr.shape[:2]}")
        hrs.append(torch.from_numpy(np.array(region(hr, stem), order="C")))
        lqs.append(torch.from_numpy(np.ascontiguousarray(region(lq, stem))))

    def stack(images: list[torch.Tensor]) -> torch.Tensor:
        tensor = torch.stack(images).permute(0, 3, 1, 2).contiguous()
        return tensor.pin_memory() if pin else tensor

    return Batch(task, stems, stack(hrs), stack(lqs))


def iter_batches(ds: BuiltDataset, plan: list[tuple[Task, list[str]]], protocol: str, pin: bool,
                 waited: list[float], cache: HRCache | None = None) -> Iterator[Batch]:  # fmt: skip
    """Decode batches in WORKERS background threads, as many batches ahead; adds waiting time to waited[0]."""
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cirbench-load") as pool:
        futures: dict[int, Future[Batch]] = {}
        for index in range(min(WORKERS, len(plan))):
            futures[index] = pool.submit(load_batch, ds, *plan[index], protocol, pin, cache)
        for index in range(len(plan)):
            start = time.perf_counter()
            batch = futures.pop(index).result()
            waited[0] += time.perf_counter() - start
            if index + WORKERS < len(plan):
                futures[index + WORKERS] = pool.submit(load_batch, ds, *plan[index + WORKERS], protocol, pin, cache)
            yield batch
