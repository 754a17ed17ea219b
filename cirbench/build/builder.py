"""The dataset builder: plans (source, task) jobs, skips what the manifest proves done, runs the rest in parallel.

Outputs follow the MoE-DiffIR layout (OUT/<name>/HR, OUT/<name>/<FOLDER>); every write is atomic and every
finished entry is journaled, so a killed build resumes where it stopped. Library code: reports, never prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from cirbench.build.jobs import (
    ENTRIES_PER_BATCH,
    JobOutcome,
    SourceJob,
    TaskJob,
    encode_batch,
    encode_task,
    prepare_source,
)
from cirbench.build.manifest import ManifestJournal, load_rows, write_manifest
from cirbench.build.planning import BuildOptions, BuildReport, TaskPlan, fingerprint, plan_tasks
from cirbench.build.provenance import write_build_record
from cirbench.build.runner import open_executor, run_jobs
from cirbench.build.sources import SourceListing, list_sources, pick_by_stem
from cirbench.errors import CirbenchError, OutputError
from cirbench.fileio import clean_stale_scratch, sha256_file
from cirbench.resources import samples_dir
from cirbench.tasks import load_taskset


class BuildProgress(Protocol):
    """Where the builder reports progress and per-item errors (the CLI draws it with rich)."""

    def start(self, stage: str, total: int) -> None: ...
    def advance(self, amount: int = 1) -> None: ...
    def error(self, line: str) -> None: ...


class SilentProgress:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def error(self, line: str) -> None:
        pass


def _is_current(row: dict[str, Any] | None, digest: str, dataset_dir: Path, keep_bitstreams: bool) -> bool:
    if row is None or row.get("fingerprint") != digest:
        return False
    output = dataset_dir / str(row["output_file"])
    if not output.exists() or sha256_file(output) != row["output_sha256"]:
        return False
    if keep_bitstreams:
        kept = row.get("bitstream_file")
        return bool(kept) and (dataset_dir / kept).exists() and sha256_file(dataset_dir / kept) == row["bitstream_sha256"]
    return True


@contextlib.contextmanager
def _build_lock(dataset_dir: Path) -> Iterator[None]:
    """One build at a time per dataset folder (the lock dies with its process, even on SIGKILL)."""
    try:
        dataset_dir.mkdir(parents=True, exist_ok=True)
        handle = open(dataset_dir / ".build.lock", "w")  # noqa: SIM115
    except OSError as exc:
        raise OutputError(f"cannot write the dataset folder {dataset_dir}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise OutputError(f"another cirbench build is writing {dataset_dir}; wait for it or stop it") from exc
    try:
        yield
    finally:
        handle.close()


def _remove_stale_parts(dataset_dir: Path) -> None:
    """Delete temporary files a killed run left behind (never files under a final name)."""
    for part in dataset_dir.rglob(".*.part"):
        with contextlib.suppress(OSError):
            part.unlink()


# Relative cost per pixel of one (encode + decode), measured on Kodak with the default parameters; only the order
# of the build depends on it (slowest first), never its bytes.
CODEC_COST = {"vvc": 8.0, "compressai": 6.0, "hific": 6.0, "hevc": 3.0, "avc": 2.0, "webp": 0.5, "jpeg": 0.1}


def _by_cost(plans: list[TaskPlan]) -> list[list[TaskPlan]]:
    groups: dict[str, list[TaskPlan]] = {}
    for plan in plans:
        groups.setdefault(plan.task.codec, []).append(plan)
    return sorted(groups.values(), key=lambda group: -CODEC_COST.get(group[0].task.codec, 1.0))


class _Builder:
    """One build run: holds the options, the known rows, the journal and the report."""

    def __init__(self, options: BuildOptions, progress: BuildProgress) -> None:
        self.options = options
        self.progress = progress
        self.source_dir = Path(options.source) if options.source else samples_dir()
        name = options.name or (self.source_dir.name if options.source else "samples")
        self.dataset_dir = Path(options.out) / name
        taskset = load_taskset(options.taskset)
        self.tasks = taskset.select(options.tasks)
        self.report = BuildReport(dataset=name, dataset_dir=self.dataset_dir, taskset=taskset, dry_run=options.dry_run)
        self.rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.current_sources: list[dict[str, Any]] = []
        self.journal = ManifestJournal(self.dataset_dir)

    def _record(self, outcome: JobOutcome) -> bool:
        """Journal a finished row or report its error; False asks the runner to stop (fail-fast)."""
        self.progress.advance()
        if outcome.row is not None:
            key = (outcome.row["kind"], outcome.row["image"], outcome.row["task"])
            self.rows[key] = outcome.row
            self.journal.append(outcome.row)
            if outcome.row["kind"] == "hr":
                self.current_sources.append(outcome.row)
            else:
                self.report.built += 1
            return True
        self.report.failures.append(str(outcome.error))
        self.progress.error(str(outcome.error))
        return not self.options.fail_fast

    def _prepare_sources(self, executor: Any, window: int, known: dict) -> list[dict[str, Any]]:
        listing = self._listing()
        for name, reason in listing.refused:
            self._record(JobOutcome(label=name, error=f"{self.source_dir / name}: {reason}"))
        used, passed, clashes = pick_by_stem(listing.images)
        self.progress.start("sources", len(used) + len(clashes))
        for path, other in clashes:
            line = f"{path}: same stem as {other.name}; outputs would collide (rename one)"
            self._record(JobOutcome(label=str(path), error=line))
        self.report.skipped_entries += [f"{path.name}: same stem as {other.name}, which is lossless and is used"
                                        for path, other in passed]  # fmt: skip
        jobs = []
        for path in used:
            previous = known.get(("hr", path.stem, "HR"))
            jobs.append(SourceJob(str(path), self.report.dataset, str(self.dataset_dir), self.options.max_pixels, previous))
        run_jobs(executor, prepare_source, jobs, window, self._record)
        return sorted(self.current_sources, key=lambda r: r["image"])

    def _listing(self) -> SourceListing:
        listing = list_sources(self.source_dir)
        self.report.ignored_files = [p.name for p in listing.ignored]
        self.report.skipped_entries = [f"{name}: {reason}" for name, reason in listing.skipped]
        return listing

    def _task_jobs(self, hr_rows: list[dict[str, Any]], plans: list[TaskPlan], known: dict) -> list[TaskJob]:
        """Entries to code, the slowest codecs first (VVC, learned, HEVC, AVC, then WebP, JPEG) so that no core idles
        at the end; within one codec image by image, so a worker decodes each source once for its tasks."""
        jobs = []
        for plan_group in _by_cost(plans):
            jobs += self._jobs_of(hr_rows, plan_group, known)
        return jobs

    def _jobs_of(self, hr_rows: list[dict[str, Any]], plans: list[TaskPlan], known: dict) -> list[TaskJob]:
        jobs = []
        for hr in hr_rows:
            for plan in plans:
                digest = fingerprint(hr["source_sha256"], plan)
                key = ("lq", hr["image"], plan.task.name)
                if not self.options.force and _is_current(known.get(key), digest, self.dataset_dir, self.options.keep_bitstreams):
                    self.report.up_to_date += 1
                    continue
                jobs.append(
                    TaskJob(
                        source_path=str(self.source_dir / hr["source_file"]),
                        source_sha256=hr["source_sha256"],
                        dataset=self.report.dataset,
                        dataset_dir=str(self.dataset_dir),
                        task=plan.task.as_record(),
                        params=plan.params,
                        tool_versions=plan.tool_versions,
                        fingerprint=digest,
                        keep_bitstreams=self.options.keep_bitstreams,
                        max_pixels=self.options.max_pixels,
                        bitstream_suffix=plan.suffix,
                    )
                )
        return jobs

    def run(self) -> BuildReport:
        start = time.perf_counter()
        self._listing()  # a missing or empty source folder fails before any codec is prepared
        plans = plan_tasks(self.tasks)
        self.report.unavailable = {p.task.name: str(p.unavailable) for p in plans if p.unavailable}
        ready = [p for p in plans if not p.unavailable]
        self.tasks = [p.task for p in ready]  # build.json lists the tasks whose folders exist; see outcome.unavailable
        if self.options.dry_run:
            return self._dry_run(ready, start)
        with _build_lock(self.dataset_dir):
            _remove_stale_parts(self.dataset_dir)
            clean_stale_scratch()
            known = load_rows(self.dataset_dir)
            self.rows = dict(known)  # rows of tasks outside this run stay in the manifest, --force or not
            try:
                with open_executor(self.options.jobs, self.options.scheduler) as (executor, window):
                    self._run_stages(executor, window, ready, {} if self.options.force else known)
            finally:
                self._finish(start)
        return self.report

    def _run_stages(self, executor: Any, window: int, ready: list[TaskPlan], known: dict) -> None:
        hr_rows = self._prepare_sources(executor, window, known)
        self.report.sources = len(hr_rows)
        if self.report.failures and self.options.fail_fast:
            return
        jobs = self._task_jobs(hr_rows, ready, known)
        self.progress.start("encode", len(jobs))
        if self.options.jobs == 1 and not self.options.scheduler:
            run_jobs(executor, encode_task, jobs, window, self._record)
            return
        batches = [jobs[i : i + ENTRIES_PER_BATCH] for i in range(0, len(jobs), ENTRIES_PER_BATCH)]
        run_jobs(executor, encode_batch, batches, window, lambda outcomes: all([self._record(o) for o in outcomes]))

    def _finish(self, start: float) -> None:
        write_manifest(self.dataset_dir, self.rows.values())
        self.journal.remove()
        self.report.seconds = time.perf_counter() - start
        write_build_record(self.dataset_dir, self.report, self.options, self.tasks)

    def _dry_run(self, ready: list[TaskPlan], start: float) -> BuildReport:
        listing = self._listing()
        known = load_rows(self.dataset_dir) if self.dataset_dir.exists() and not self.options.force else {}
        hr_rows = [
            {"image": p.stem, "source_file": p.name, "source_sha256": sha256_file(p)} for p in pick_by_stem(listing.images)[0]
        ]
        self.report.sources = len(hr_rows)
        self.report.would_build = len(self._task_jobs(hr_rows, ready, known))
        self.report.seconds = time.perf_counter() - start
        return self.report


def build_dataset(options: BuildOptions, progress: BuildProgress | None = None) -> BuildReport:
    """Build (or resume, or dry-run) one dataset; per-item failures are in the report, not raised."""
    if options.jobs < 1:
        raise CirbenchError("--jobs must be at least 1")
    return _Builder(options, progress or SilentProgress()).run()

