"""The results store beside a dataset (OUT/<name>/results/): one folder per run, scores as Parquet.

A run writes one Parquet part per finished batch (atomically), so a killed evaluation resumes where it stopped;
finishing merges the parts into scores.parquet and the long CSV. Runs accumulate; the leaderboard reads them all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cirbench.errors import CirbenchError
from cirbench.fileio import pid_alive, write_text_atomic, write_with_atomic

SCORE_COLUMNS = ["dataset", "image", "task", "codec", "level", "method", "metric", "value"]
SET_LEVEL_IMAGE = "*"  # image value of rows holding a whole-set metric (FID, KID) of one task
RECORD_FILE = "record.json"
SCORES_FILE = "scores.parquet"
CSV_FILE = "scores.csv"
KEY = ["image", "task", "metric"]
LOCK_FILE = ".lock"


class ResultsError(CirbenchError):
    """The results store holds an unreadable record or score file, or cannot be written."""


def repair_hint(run: Path) -> str:
    return f"repair: rerun the same `cirbench evaluate` with --force, or delete the run: `cirbench runs rm {run}`"


def writable(path: Path) -> bool:
    """Whether files can be created at ``path`` (or, where it does not exist yet, in its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return False
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".cirbench-probe-"):
            return True
    except OSError:
        return False


def run_key_hash(identity: dict[str, Any]) -> str:
    """A stable id of what makes two runs comparable (model, weights, protocol, profile, tiling, dataset)."""
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def scores_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    for column in SCORE_COLUMNS[:-1]:
        frame[column] = frame[column].astype(str)
    frame["value"] = frame["value"].astype("float64")
    return frame


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    write_with_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


class RunFolder:
    """results/runs/<method>-<protocol>-<profile>-<hash>/: record.json, parts/, scores.parquet, images/, previews/."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def parts_dir(self) -> Path:
        return self.path / "parts"

    @property
    def images_dir(self) -> Path:
        return self.path / "images"

    @property
    def previews_dir(self) -> Path:
        return self.path / "previews"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run for one process: a second evaluate of the same run fails instead of racing."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK_FILE
        for _ in range(2):
            if _create_with_pid(lock):
                break
            if _holder_alive(lock):
                raise ResultsError(
                    f"{self.path} is being evaluated by another process ({lock}); wait for it or delete the lock"
                ) from None
            lock.unlink(missing_ok=True)  # left by a killed run
        else:
            raise ResultsError(f"cannot lock {self.path}")
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    def busy(self) -> bool:
        """Whether a live process holds this run's lock (an evaluation is running now)."""
        lock = self.path / LOCK_FILE
        return lock.exists() and _holder_alive(lock)

    def remove(self) -> None:
        """Delete the whole run folder (a run that recorded nothing, or `cirbench runs rm`)."""
        shutil.rmtree(self.path, ignore_errors=False)

    def clear(self) -> None:
        """Delete everything of the run but its lock (evaluate --force)."""
        for item in self.path.iterdir():
            if item.name == LOCK_FILE:
                continue
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()

    def read_record(self) -> dict[str, Any]:
        file = self.path / RECORD_FILE
        if not file.is_file():
            return {}
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{file}: unreadable run record ({_first_line(exc)}); {repair_hint(self.path)}") from exc
        fields = ("method", "protocol", "profile")
        if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in fields):
            raise ResultsError(f"{file}: not a cirbench run record (needs {', '.join(fields)}); {repair_hint(self.path)}")
        return record

    def write_record(self, record: dict[str, Any]) -> None:
        write_text_atomic(self.path / RECORD_FILE, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")

    def write_part(self, name: str, frame: pd.DataFrame) -> None:
        slug = _slug(name)
        if len(slug) > 120:  # long image names: keep part names far below the 255-byte limit
            slug = f"{slug[:64]}-{hashlib.sha256(slug.encode()).hexdigest()[:16]}"
        _write_parquet(frame, self.parts_dir / f"{slug}.parquet")

    def scores(self) -> pd.DataFrame:
        """Every score of the run: merged file plus parts not yet merged; the newest value of a key wins."""
        files = [self.path / SCORES_FILE] if (self.path / SCORES_FILE).is_file() else []
        if self.parts_dir.is_dir():
            files += sorted(self.parts_dir.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)
        frames = []
        for file in files:
            try:
                frames.append(pd.read_parquet(file))
            except Exception as exc:  # noqa: BLE001  (pyarrow reports a damaged file in many ways)
                raise ResultsError(f"{file}: unreadable score file ({_first_line(exc)}); {repair_hint(self.path)}") from exc
            if list(frames[-1].columns) != SCORE_COLUMNS:
                raise ResultsError(f"{file}: not a cirbench score file (columns {list(frames[-1].columns)}); "
                                   f"{repair_hint(self.path)}")  # fmt: skip
        if not frames:
            return scores_frame([])
        merged = pd.concat(frames, ignore_index=True)
        return merged.drop_duplicates(subset=KEY, keep="last").reset_index(drop=True)

    def finalise(self) -> pd.DataFrame:
        """Merge parts into scores.parquet and scores.csv (atomically), then delete the merged parts."""
        frame = self.scores()
        order = {name: i for i, name in enumerate(frame["task"].drop_duplicates())}
        frame = frame.sort_values(["task", "image", "metric"], key=lambda s: s.map(order) if s.name == "task" else s)
        frame = frame.reset_index(drop=True)
        _write_parquet(frame, self.path / SCORES_FILE)
        write_with_atomic(self.path / CSV_FILE, lambda tmp: frame.to_csv(tmp, index=False))
        if self.parts_dir.is_dir():
            for part in self.parts_dir.glob("*.parquet"):
                part.unlink()
        return frame


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _create_with_pid(lock: Path) -> bool:
    """Create ``lock`` already holding this PID (hard link of a finished temporary file); False if it exists."""
    tmp = lock.with_name(f"{lock.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(str(os.getpid()))
    try:
        os.link(tmp, lock)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _holder_alive(lock: Path) -> bool:
    """False only when the lock names a process that is gone (a lock is never seen empty: see _create_with_pid)."""
    try:
        text = lock.read_text().strip()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if not text.isdigit():
        return True  # not ours to judge: refuse with the message naming the lock
    pid = int(text)
    return 0 < pid != os.getpid() and pid_alive(pid)


@dataclass
class RunEntry:
    """One run folder: its record ({} when missing or unreadable) and, if unreadable, why (one line)."""

    folder: RunFolder
    record: dict[str, Any]
    problem: str = ""


class ResultsStore:
    """All runs evaluated on one dataset."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_folder(self, method: str, protocol: str, profile: str, key_hash: str) -> RunFolder:
        return RunFolder(self.runs_dir / _slug(f"{method}-{protocol}-{profile}-{key_hash}"))

    def entries(self) -> list[RunEntry]:
        """Every run folder, readable or not, by folder name; an unreadable record is reported, never raised."""
        if not self.runs_dir.is_dir():
            return []
        found = []
        for path in sorted(p for p in self.runs_dir.iterdir() if p.is_dir()):
            folder = RunFolder(path)
            try:
                found.append(RunEntry(folder, folder.read_record()))
            except ResultsError as exc:
                found.append(RunEntry(folder, {}, str(exc)))
        return found

    def runs(self) -> list[tuple[RunFolder, dict[str, Any]]]:
        """(folder, record) of every run with a readable record, oldest update first."""
        found = [(e.folder, e.record) for e in self.entries() if e.record]
        return sorted(found, key=lambda item: str(item[1].get("updated_utc", "")))

    def labelled_runs(self) -> list[tuple[RunFolder, dict[str, Any], str]]:
        """(folder, record, label) of every run; no run hides another.

        Each run folder is one configuration (its identity hash). Runs that share a method label, protocol and
        profile but differ in configuration keep apart under unique labels naming what differs, e.g.
        ``tv-chambolle[model_options.weight=0.05]`` (see ``distinguishing_labels``).
        """
        groups: dict[tuple[str, str, str], list[tuple[RunFolder, dict[str, Any]]]] = {}
        for folder, record in self.runs():
            groups.setdefault((record["method"], record["protocol"], record["profile"]), []).append((folder, record))
        labelled = []
        for (method, _, _), members in groups.items():
            labels = distinguishing_labels(method, [record.get("identity", {}) for _, record in members])
            labelled += [(folder, record, label) for (folder, record), label in zip(members, labels, strict=True)]
        return labelled

    def all_scores(self) -> pd.DataFrame:
        """Scores of the completed tasks of every readable run (see ``scores_and_problems``)."""
        return self.scores_and_problems()[0]

    def scores_and_problems(self) -> tuple[pd.DataFrame, list[str]]:
        """Scores of the completed tasks of every run, labelled uniquely, plus protocol, profile, mode, run columns;
        and one line per run left out because a file of it cannot be read (every other run is unaffected)."""
        frames, problems = [], [e.problem for e in self.entries() if e.problem]
        for folder, record, label in self.labelled_runs():
            try:
                frame = folder.scores()
            except ResultsError as exc:
                problems.append(str(exc))
                continue
            frame = frame[frame["task"].isin(record.get("tasks_complete", []))]
            if frame.empty:
                continue
            is_result, why_not = record_is_result(record)
            frame = frame.assign(
                method=label, protocol=record["protocol"], profile=record["profile"],
                mode=record.get("mode", "blind"), run=folder.path.name, is_result=is_result, not_a_result=why_not,
            )  # fmt: skip
            frames.append(frame)
        if not frames:
            empty = {c: pd.Series(dtype=str) for c in ("protocol", "profile", "mode", "run", "not_a_result")}
            return scores_frame([]).assign(**empty, is_result=pd.Series(dtype=bool)), problems
        return pd.concat(frames, ignore_index=True), problems


def record_is_result(record: dict[str, Any]) -> tuple[bool, str]:
    """(is it a result, why not); records older than the ``is_result`` field are judged by their model label."""
    if "is_result" in record:
        return bool(record["is_result"]), str(record.get("not_a_result") or "")
    label = str(record.get("model", {}).get("label", "")).lower()
    for word, reason in (("random", "random weights"), ("untrained", "untrained weights")):
        if word in label:
            return False, reason
    return True, ""


def _flat(identity: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in identity.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = json.dumps(value, sort_keys=True, default=str)
    return flat


def _with_options(method: str, identity: dict[str, Any]) -> str:
    """``method[k=v,...]`` naming the model options a lone run was given (bare ``method`` when none)."""
    options = identity.get("model_options") or {}
    text = ",".join(f"{k}={json.dumps(v, default=str).strip(chr(34))}" for k, v in sorted(options.items()))
    if not text:
        return method
    return f"{method}[{text}]" if len(text) <= 60 else f"{method}[{run_key_hash(identity)[:8]}]"


def distinguishing_labels(method: str, identities: list[dict[str, Any]]) -> list[str]:
    """``method`` for a lone configuration (with the model options it was given); else ``method[k=v,...]`` naming
    the settings that differ.

    Model options are named bare (``weight=0.05``), other fields by name (``tile=256``), a rescored run as
    ``[rescored]``; a run whose differing settings are all unset keeps the bare ``method``; labels that would
    collide or run long use the run id.
    """
    if len(identities) < 2:
        return [_with_options(method, identity) for identity in identities]
    flats = [_flat(identity) for identity in identities]
    keys = sorted({k for flat in flats for k in flat})
    differing = [k for k in keys if len({flat.get(k, "null") for flat in flats}) > 1]
    differing = [k for k in differing if not any(other.startswith(f"{k}.") for other in differing)]
    if any(k.startswith("model_options.") for k in differing):
        differing = [k for k in differing if k != "model_version"]  # the version string restates the options
    labels = []
    for flat, identity in zip(flats, identities, strict=True):
        parts = [
            "rescored" if k == "rescored_from" else f"{k.removeprefix('model_options.')}={flat[k].strip(chr(34))}"
            for k in differing
            if flat.get(k, "null") not in ("null", "{}")
        ]
        text = ",".join(parts)
        if not text:
            labels.append(method)
        else:
            labels.append(f"{method}[{text}]" if len(text) <= 60 else f"{method}[{run_key_hash(identity)[:8]}]")
    if len(set(labels)) < len(labels):  # fall back to the run ids, always distinct
        labels = [f"{method}[{run_key_hash(identity)[:8]}]" for identity in identities]
    return labels
