"""The inner loop of evaluate: restore each batch, score it on the device, store scores in timed flushes.

Nothing in the loop waits for the GPU except what must reach the CPU: scores are converted and written
every FLUSH_SECONDS (a kill loses at most that much work), and model time is measured with CUDA events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.loading import Batch, HRCache, iter_batches, plan_batches
from cirbench.evaluation.model_guard import CallSite, RangeCheck, guarded_restore
from cirbench.evaluation.protocols import preview_box
from cirbench.evaluation.results import SET_LEVEL_IMAGE, RunFolder, scores_frame
from cirbench.evaluation.run_record import Timings
from cirbench.evaluation.scorer import Scorer
from cirbench.fileio import encode_png, write_bytes_atomic
from cirbench.metrics._base import as_unit_float
from cirbench.models import ModelError, RestorationModel
from cirbench.models.tiling import restore_any_size
from cirbench.tasks import Task

FLUSH_SECONDS = 5.0
Progress = Callable[[int, int, str], None]


class ModelTimer:
    """Model time: perf_counter on CPU; CUDA events on GPU (read once at the end, no per-batch sync)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.seconds = 0.0
        self.events: list[tuple[Any, Any]] = []

    @contextmanager
    def measure(self) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.events.append((start, end))
        else:
            begin = time.perf_counter()
            yield
            self.seconds += time.perf_counter() - begin

    def total(self) -> float:
        if self.cuda and self.events:
            torch.cuda.synchronize()
            self.seconds += sum(start.elapsed_time(end) for start, end in self.events) / 1000.0
            self.events = []
        return self.seconds


@dataclass
class _Scored:
    task: Task
    stems: list[str]
    values: dict[str, torch.Tensor]  # result name -> [B] on the device
    check: RangeCheck  # NaN/inf and out-of-range counts of the model output, on the device


class EvaluationSession:
    """One evaluate call over the pending (image, task) pairs of one run."""

    def __init__(self, ds: BuiltDataset, model: RestorationModel, scorer: Scorer, folder: RunFolder,
                 settings: Any, method: str) -> None:  # fmt: skip
        self.ds, self.model, self.scorer, self.folder = ds, model, scorer, folder
        self.settings, self.method = settings, method
        self.timings = Timings()
        self.timer = ModelTimer(settings.device)
        self.preview_stems = set(ds.images[: settings.preview_images])
        self.buffer: list[_Scored] = []
        self.last_flush = time.perf_counter()
        self.clamped_pixels = 0  # pixels with a value just outside [0, 1], clamped before scoring
        self.on_task_done: Callable[[str], None] | None = None  # called after a task's scores are all written
        self.hr_cache = HRCache()  # every task reads the same HR images

    def site(self, task: Task, stems: list[str]) -> CallSite:
        return CallSite(self.model.info.name, self.ds.name, task.name, tuple(stems))

    def restore(self, batch: Batch) -> torch.Tensor:
        """The model's output quantised to 8 bits (what a PNG stores), as float 0..255 on the device."""
        lq = batch.lq.to(self.settings.device, non_blocking=True).to(torch.float32).div_(255.0)
        label = batch.task if self.model.info.needs_task_label else None
        on_batch = getattr(self.model, "on_batch", None)  # optional: models that look images up by name (captions)
        if callable(on_batch):
            on_batch(list(batch.stems))
        with torch.inference_mode(), self.timer.measure():
            out = restore_any_size(
                guarded_restore(self.model, label, self.site(batch.task, batch.stems)),
                lq,
                multiple=self.model.info.size_multiple,
                tile=self.settings.tile,
                overlap=self.settings.overlap,
            )
        return out

    def score(self, batch: Batch, out: torch.Tensor, feed_sets: bool) -> torch.Tensor:
        """Scores of the model's output quantised to 8 bits (what a PNG stores); returns it as uint8 [B,3,H,W]."""
        start = time.perf_counter()
        check = RangeCheck.of(out)
        clean = out if check.known_in_range else torch.nan_to_num(out).clamp_(0.0, 1.0)
        restored8 = clean.mul(255.0).round_().to(torch.uint8)
        hr8 = batch.hr.to(self.settings.device, non_blocking=True)
        values = self.scorer.paired(hr8, restored8)
        if feed_sets:
            self.scorer.update_sets(as_unit_float(hr8), as_unit_float(restored8))
        self.buffer.append(_Scored(batch.task, batch.stems, values, check))
        self.timings.metrics_s += time.perf_counter() - start
        return restored8

    def row(self, image: str, task: Task, metric: str, value: float) -> dict[str, Any]:
        return {"dataset": self.ds.name, "image": image, "task": task.name, "codec": task.family,
                "level": str(task.level), "method": self.method, "metric": metric, "value": value}  # fmt: skip

    def write_images(self, batch: Batch, restored8: torch.Tensor) -> None:
        wanted = [i for i, s in enumerate(batch.stems) if self.settings.save_images or s in self.preview_stems]
        if not wanted:
            return
        start = time.perf_counter()
        pixels = restored8[wanted].permute(0, 2, 3, 1).cpu().numpy()
        for index, rgb in zip(wanted, pixels, strict=True):
            stem, folder = batch.stems[index], batch.task.folder
            if self.settings.save_images:
                write_bytes_atomic(self.folder.images_dir / folder / f"{stem}.png", encode_png(rgb))
            if stem in self.preview_stems:
                crop = preview_box(*rgb.shape[:2]).cut(rgb)
                write_bytes_atomic(self.folder.previews_dir / folder / f"{stem}.png", encode_png(crop))
        self.timings.write_s += time.perf_counter() - start

    def flush(self, force: bool = False) -> None:
        """Write buffered scores as one Parquet part (every FLUSH_SECONDS, and at the end of each task)."""
        if not self.buffer or (not force and time.perf_counter() - self.last_flush < FLUSH_SECONDS):
            return
        start = time.perf_counter()
        good, failure = [], None
        for scored in self.buffer:
            try:
                self.clamped_pixels += scored.check.verdict(self.site(scored.task, scored.stems))
            except ModelError as exc:
                failure = exc
                break
            good.append(scored)
        self.buffer = []
        rows = [
            self.row(stem, scored.task, metric, value)
            for scored in good
            for metric, tensor in scored.values.items()
            for stem, value in zip(scored.stems, tensor.tolist(), strict=True)
        ]
        if rows:  # the batches before a bad one are kept
            first = good[0]
            self.folder.write_part(f"{first.task.name}-{first.stems[0]}-{os.getpid()}-{time.time_ns()}", scores_frame(rows))
        if failure is not None:
            raise failure
        self.last_flush = time.perf_counter()
        self.timings.write_s += self.last_flush - start

    def run_task(self, task: Task, stems: list[str], waited: list[float]) -> Iterator[int]:
        chunks = plan_batches(self.ds, stems, self.settings.protocol, self.settings.batch)
        feed_sets = self.scorer.has_distribution
        self.scorer.reset_sets()
        pin = self.settings.device.startswith("cuda")
        plan = [(task, chunk) for chunk in chunks]
        for batch in iter_batches(self.ds, plan, self.settings.protocol, pin, waited, self.hr_cache):
            restored8 = self.score(batch, self.restore(batch), feed_sets)
            self.write_images(batch, restored8)
            self.flush()
            yield len(batch.stems)
        self.flush(force=True)
        if feed_sets:
            rows = [self.row(SET_LEVEL_IMAGE, task, n, v) for n, v in self.scorer.compute_sets().items()]
            self.folder.write_part(f"{task.name}-set", scores_frame(rows))
        if self.on_task_done is not None:
            self.on_task_done(task.name)

    def run(self, pending: dict[str, list[str]], progress: Progress | None) -> int:
        """Evaluate every pending pair; returns how many were restored."""
        total, done, waited = sum(len(s) for s in pending.values()), 0, [0.0]
        try:
            for task in [t for t in self.ds.tasks if pending.get(t.name)]:
                for count in self.run_task(task, pending[task.name], waited):
                    done += count
                    if progress is not None:
                        progress(done, total, task.name)
        except KeyboardInterrupt:
            self.flush(force=True)  # keep what was scored before Ctrl-C
            raise
        self.timings.load_wait_s = waited[0]
        self.timings.model_s = self.timer.total()
        self.timings.clamped_pixels = self.clamped_pixels
        return total
