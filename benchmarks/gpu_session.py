"""One command for a short GPU slot: build, train promptcir-s on a wall-clock budget, evaluate on LIVE1, benchmark.

Every step writes under OUT (weights, history, leaderboard, benchmark JSON, logs) and session.json records what ran,
how long, and what failed; budgets are flags, so a slot can run part of it (--steps build,train) and another the rest.
--smoke runs every step at toy size on CPU (a test keeps it working before a GPU is ever lent).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # cirbench from this checkout, installed or not
SHARED = REPO.parent / "shared" / "data"
RECIPE = REPO / "cirbench" / "models" / "promptcir" / "_weights" / "promptcir-s.train.toml"
STEPS = ("build", "train", "evaluate", "bench")


def traditional_tasks() -> list[str]:
    """The 12 traditional tasks of moe-diffir-21 (the learned ones need weights a slot without network lacks)."""
    from cirbench.tasks import load_taskset

    return [task.name for task in load_taskset("moe-diffir-21").tasks if task.kind == "traditional"]


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class Session:
    """Runs steps, each a logged subprocess or call with a timeout, and keeps session.json current."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.out = args, Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "logs").mkdir(exist_ok=True)
        self.record: dict = {"smoke": args.smoke, "device": args.device, "steps": {}, "started": time.time()}
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "CIRBENCH_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}

    def save(self) -> None:
        self.record["elapsed_s"] = round(time.time() - self.record["started"], 1)
        (self.out / "session.json").write_text(json.dumps(self.record, indent=2) + "\n")

    def run(self, name: str, command: list[str], timeout: float) -> bool:
        """A cirbench or benchmark command; its output goes to logs/<name>.log."""
        start = time.time()
        log = self.out / "logs" / f"{name}.log"
        try:
            with open(log, "w") as handle:
                done = subprocess.run(command, cwd=REPO, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                      timeout=timeout, check=False)  # fmt: skip
            status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f} s"
        self.record["steps"][name] = {"status": status, "seconds": round(time.time() - start, 1), "log": str(log)}
        self.save()
        print(f"[gpu-session] {name}: {status} ({time.time() - start:.0f} s)", flush=True)
        return status == "ok"

    def step(self, name: str, call: Callable[[], None]) -> None:
        start = time.time()
        try:
            call()
            status = "ok"
        except Exception as exc:  # noqa: BLE001  (a failed step is recorded; the session goes on)
            status = f"failed: {type(exc).__name__}: {exc}"
        self.record["steps"][name] = {"status": status, "seconds": round(time.time() - start, 1)}
        self.save()
        print(f"[gpu-session] {name}: {status} ({time.time() - start:.0f} s)", flush=True)

    def cirbench(self, name: str, *args: str, timeout: float = 600) -> bool:
        return self.run(name, [_python(), "-m", "cirbench", *args], timeout)


def _sources(session: Session) -> tuple[Path, Path]:
    """Folders of links: BSDS500 train+val with CBSD68 (training), LIVE1 (test); toy subsets with --smoke."""
    train, test = session.out / "src" / "bsds500-trainval", session.out / "src" / "live1"
    for folder in (train, test):
        folder.mkdir(parents=True, exist_ok=True)
    files = sorted((SHARED / "bsds500" / "train").glob("*.jpg")) + sorted((SHARED / "bsds500" / "val").glob("*.jpg"))
    files += sorted((SHARED / "cbsd68").glob("*.png"))
    live1 = sorted(p for p in (SHARED / "live1").iterdir() if p.suffix.lower() in (".bmp", ".png"))
    if session.args.smoke:  # toy size: 96 px crops of 4 training and 2 test images
        from PIL import Image

        for folder, chosen in ((train, files[:4]), (test, live1[:2])):
            for path in chosen:
                Image.open(path).convert("RGB").crop((0, 0, 96, 96)).save(folder / f"{path.stem}.png")
        return train, test
    for folder, chosen in ((train, files), (test, live1)):
        for path in chosen:
            link = folder / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    return train, test


def build(session: Session) -> None:
    train, test = _sources(session)
    tasks = ",".join(session.args.tasks)
    jobs = str(session.args.jobs)
    for name, source in (("build_train", train), ("build_live1", test)):
        session.cirbench(name, "build", str(source), str(session.out / "data"), "--tasks", tasks, "--jobs", jobs,
                         timeout=session.args.build_seconds)  # fmt: skip


def _calibrated_steps(session: Session, config, data: Path) -> int:
    """Steps that fit the training budget: seconds per step measured on a short calibration run."""
    from cirbench.training.trainer import train

    stamps: list[float] = []
    probe = 12 if not session.args.smoke else 2
    train("promptcir-s", data, config=config.with_overrides(steps=10 * probe, val_images=config.val_images),
          out=session.out / "calibration", device=session.args.device, stop_after=probe,
          on_event=lambda kind, payload: stamps.append(time.perf_counter()) if kind == "step" else None)  # fmt: skip
    per_step = (stamps[-1] - stamps[1]) / max(1, len(stamps) - 2) if len(stamps) > 2 else 1.0
    steps = int(session.args.train_seconds / max(per_step, 1e-3))
    session.record["train_calibration"] = {"seconds_per_step": round(per_step, 4), "steps": steps}
    return max(1, min(steps, config.steps))


def train_step(session: Session) -> None:
    from cirbench.training.config import load_config
    from cirbench.training.trainer import train

    data = session.out / "data" / "bsds500-trainval"
    config = load_config(RECIPE)
    if session.args.smoke:
        config = config.with_overrides(batch_size=2, crop_size=64, val_images=1, val_crop=64, workers=0,
                                       warmup_steps=1, checkpoint_every=0, val_every=0)  # fmt: skip
    import shutil

    for folder in ("calibration", "promptcir-s"):  # each session trains afresh
        shutil.rmtree(session.out / folder, ignore_errors=True)
    steps = session.args.train_steps or _calibrated_steps(session, config, data)
    config = config.with_overrides(steps=steps, warmup_steps=min(config.warmup_steps, max(1, steps // 20)),
                                   val_every=max(1, steps // 4), checkpoint_every=max(1, steps // 2))  # fmt: skip
    result = train("promptcir-s", data, config=config, out=session.out / "promptcir-s", device=session.args.device)
    weights = session.out / "promptcir-s.safetensors"
    weights.write_bytes(Path(result.final_weights).read_bytes())
    from cirbench.fileio import sha256_file

    session.record["weights"] = {"path": str(weights), "sha256": sha256_file(weights), "steps": steps,
                                 "bytes": weights.stat().st_size, "config": config.as_record()}  # fmt: skip


def evaluate_step(session: Session) -> None:
    live1 = session.out / "data" / "live1"
    common = ["--metrics", "psnr,ssim", "--device", session.args.device, "--tasks", ",".join(session.args.tasks)]
    session.cirbench("evaluate_identity", "evaluate", str(live1), "--model", "identity", *common)
    weights = session.out / "promptcir-s.safetensors"
    if weights.exists():
        session.cirbench("evaluate_promptcir_s", "evaluate", str(live1), "--model", "promptcir-s", "--checkpoint",
                         str(weights), "--method", "promptcir-s", *common, timeout=session.args.eval_seconds)  # fmt: skip
    session.cirbench("leaderboard", "leaderboard", str(live1), "--no-identity", "--format", "json", "--csv",
                     str(session.out / "live1_leaderboard.csv"))  # fmt: skip
    _verdict(session, live1)


def _verdict(session: Session, live1: Path) -> None:
    """Does promptcir-s beat identity in PSNR on every task? (the bar for shipping its weights)"""
    from cirbench.compare.leaderboard import build_leaderboard
    from cirbench.compare.tables import to_markdown
    from cirbench.dataset.reader import BuiltDataset

    board = build_leaderboard([BuiltDataset.open(live1)], ensure_identity=False)
    (session.out / "live1_leaderboard.md").write_text(to_markdown(board))
    table = board.table.set_index("method")
    if "promptcir-s" not in table.index:
        session.record["verdict"] = "promptcir-s was not evaluated"
        return
    gains = {t: float(table.loc["promptcir-s", f"{t}/psnr"] - table.loc["identity", f"{t}/psnr"])
             for t in session.args.tasks}  # fmt: skip
    session.record["live1_psnr_gain_db"] = {t: round(g, 4) for t, g in gains.items()}
    session.record["verdict"] = "ship" if all(g > 0 for g in gains.values()) else "do not ship (a task is not improved)"


def bench(session: Session) -> None:
    results = session.out / "bench"
    results.mkdir(exist_ok=True)
    smoke, python, device = session.args.smoke, _python(), session.args.device
    runs = {
        "bench_metrics": ["--pairs", "1", "--batch", "1", "--repeat", "1", "--no-deep"] if smoke else ["--pairs", "32", "--batch", "8"],
        "bench_evaluate": ["--images", "2", "--size", "64", "--batches", "1", "--repeats", "1"] if smoke else [],
        "bench_learned_codecs": ["--images", "1", "--crop", "128", "--skip-stock"] if smoke
        else ["--images", "2", "--device", device, "--skip-stock"],
    }  # fmt: skip
    extra = [name for name in ("bench_moediffir", "bench_diffloss", "bench_sspir") if (REPO / "benchmarks" / f"{name}.py").exists()]
    for name in extra:
        runs[name] = ["--smoke"] if smoke else ["--device", device]
    for name, args in runs.items():
        session.run(name, [python, str(REPO / "benchmarks" / f"{name}.py"), *args, "--out", str(results / f"{name}.json")],
                    timeout=session.args.bench_seconds)  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-session-out"), help="output folder (default $OUT)")
    parser.add_argument("--smoke", action="store_true", help="every step at toy size on CPU (< 3 min)")
    parser.add_argument("--device", default=None, help="cuda (default) or cpu (default with --smoke)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"which steps, in order: {','.join(STEPS)}")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="build workers")
    parser.add_argument("--train-seconds", type=float, default=240.0, help="wall-clock budget of training")
    parser.add_argument("--train-steps", type=int, default=0, help="fixed step count instead of the budget")
    parser.add_argument("--build-seconds", type=float, default=240.0, help="time limit of each build")
    parser.add_argument("--eval-seconds", type=float, default=150.0, help="time limit of the promptcir-s evaluation")
    parser.add_argument("--bench-seconds", type=float, default=90.0, help="time limit of each benchmark")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.smoke else "cuda")
    args.tasks = traditional_tasks() if not args.smoke else ["JPEG_10", "WEBP_1"]
    if args.smoke and not args.train_steps:
        args.train_steps = 2
    unknown = set(args.steps.split(",")) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)} (known: {', '.join(STEPS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    session = Session(args)
    actions = {"build": build, "train": train_step, "evaluate": evaluate_step, "bench": bench}
    for name in args.steps.split(","):
        session.step(name, lambda name=name: actions[name](session))
    failed = [k for k, v in session.record["steps"].items() if v["status"] != "ok"]
    print(f"[gpu-session] done in {time.time() - session.record['started']:.0f} s; failed: {failed or 'none'}; "
          f"results in {session.out}", flush=True)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
