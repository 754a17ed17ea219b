"""The report's per-dataset figures and lists: plots from the leaderboard, side-by-side crops with their scores,
and each method's best and worst images against the input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cirbench.build.jobs import psnr_rgb
from cirbench.compare import plots
from cirbench.compare.leaderboard import IDENTITY, OVERALL, Leaderboard, input_bpp
from cirbench.dataset.reader import BuiltDataset, DatasetError, read_rgb
from cirbench.evaluation.protocols import get_protocol, preview_box
from cirbench.evaluation.results import ResultsStore, repair_hint
from cirbench.metrics.aggregate import capped

MAX_CROP_FIGURES = 12
PREVIEW_IMAGES = 2


def family_means(table: pd.DataFrame, metric: str, families: list[str]) -> pd.DataFrame:
    """method, family, value, low, high of the complete-family means in the leaderboard rows ``table``."""
    rows = []
    for _, row in table.iterrows():
        for family in families:
            column = f"{family} mean/{metric}"
            if column in row and not pd.isna(row[column]):
                rows.append({"method": row["method"], "family": family, "value": row[column],
                             "low": row.get(f"{column}/low"), "high": row.get(f"{column}/high")})  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "family", "value", "low", "high"])


def make_plots(ds: BuiltDataset, board: Leaderboard, table: pd.DataFrame, means: pd.DataFrame, out: Path) -> list[Path]:
    families = list(dict.fromkeys(t.family for t in ds.tasks))
    tasks = [t.name for t in ds.tasks]
    written = []
    plots.assign_colours(list(table["method"]))  # one distinct colour per method of this section
    metrics = [m for m in board.metrics if m in set(means["metric"])]  # this profile's metrics only
    for metric in metrics:
        bars = family_means(table, metric, families)
        stem = metric.replace(":", "-")  # pyiqa:musiq -> a file name every file system accepts
        if not bars.empty:
            written.append(plots.codec_bars(bars, metric, families, out / f"codec_bars_{stem}.png"))
        written.append(plots.level_curves(means, metric, families, tasks, out / f"levels_{stem}.png"))
    rates = input_bpp(ds)
    for metric in [m for m in ("psnr", "ssim", "lpips") if m in metrics]:
        written.append(plots.restored_rate_distortion(means, rates, metric, families, tasks, out / f"rd_restored_{metric}.png"))
    if "psnr" in metrics:
        perceptual = next((m for m in ("lpips", "dists", "ssim") if m in metrics), None)
        if perceptual is not None:
            written.append(plots.perception_distortion(means, "psnr", perceptual, out / f"{perceptual}_vs_psnr.png"))
    written.append(plots.rate_distortion(ds.manifest, out / "inputs_bpp_vs_psnr.png"))
    return written


def _label(name: str, crop: np.ndarray, hr: np.ndarray, lpips: float | None) -> str:
    text = f"{name}  {psnr_rgb(hr, crop):.2f} dB"
    return text + (f"  LPIPS {lpips:.3f}" if lpips is not None and np.isfinite(lpips) else "")


def _lpips_of(scores: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    rows = scores[scores["metric"] == "lpips"]
    return {(r.method, r.task, r.image): float(r.value) for r in rows.itertuples(index=False)}


def _leader(table: pd.DataFrame) -> str | None:
    """The method with the largest overall PSNR gain over identity in this group (None without one)."""
    column = f"{OVERALL}/psnr/delta"
    rows = table[table["method"] != IDENTITY]
    if rows.empty:
        return None
    if column in rows.columns and pd.to_numeric(rows[column], errors="coerce").notna().any():
        return str(rows.loc[pd.to_numeric(rows[column], errors="coerce").idxmax(), "method"])
    return str(rows["method"].iloc[0])


def crop_candidates(ds: BuiltDataset, board: Leaderboard, table: pd.DataFrame, protocol: str, profile: str,
                    runs: dict) -> list[tuple[str, str, float]]:  # fmt: skip
    """(task, image, gain) where the leading method gains most, then loses most, alternating; only pairs whose
    preview exists (the first images of each task, see `evaluate --preview-images`)."""
    leader = _leader(table)
    scores = board.scores
    psnr = scores[(scores["dataset"] == ds.name) & (scores["protocol"] == protocol) & (scores["profile"] == profile)
                  & (scores["metric"] == "psnr")]  # fmt: skip
    if leader is None or leader not in runs:
        return []
    mine = psnr[psnr["method"] == leader].set_index(["task", "image"])["value"]
    base = psnr[psnr["method"] == IDENTITY].set_index(["task", "image"])["value"]
    common = mine.index.intersection(base.index)
    folders = {t.name: t.folder for t in ds.tasks}
    kept = [k for k in common if (runs[leader].previews_dir / folders.get(k[0], k[0]) / f"{k[1]}.png").is_file()]
    if not kept:
        return []
    gain = pd.Series(capped(mine[kept]) - capped(base[kept]), index=pd.MultiIndex.from_tuples(kept)).sort_values()
    order = []
    for high, low in zip(gain.index[::-1], gain.index, strict=True):
        order += [high, low]
    return [(task, image, float(gain[(task, image)])) for task, image in dict.fromkeys(order)]


def crop_figures(ds: BuiltDataset, board: Leaderboard, methods: list[str], protocol: str, profile: str,
                 out: Path, problems: list[str] | None = None, table: pd.DataFrame | None = None) -> list[Path]:  # fmt: skip
    """HR | LQ | each method on the same crop, where the leading method gains most and loses most against the
    input (alternating), else the first images at the hardest and easiest level of each codec.

    Each panel is labelled with the crop's PSNR against HR (and the image's LPIPS when scored); the LQ is the
    identity output, so it is shown once. An unreadable preview leaves its panel out, with a line in ``problems``.
    """
    runs = {label: f for f, r, label in ResultsStore(ds.results_dir()).labelled_runs()
            if (r["protocol"], r["profile"]) == (protocol, profile)}  # fmt: skip
    shown = [m for m in methods if m in runs and m != IDENTITY]
    lpips = _lpips_of(board.scores[board.scores["dataset"] == ds.name])
    chosen = crop_candidates(ds, board, table, protocol, profile, runs) if table is not None else []
    candidates = [(task, image) for task, image, _ in chosen] or _first_images(ds)
    written: list[Path] = []
    for task, stem in dict.fromkeys(candidates):
        if len(written) >= MAX_CROP_FIGURES:
            break
        figure = _crop_figure(ds, ds.task(task), stem, shown, runs, lpips, protocol, out,
                              problems if problems is not None else [])  # fmt: skip
        if figure is not None:
            written.append(figure)
    return written


def _first_images(ds: BuiltDataset) -> list[tuple[str, str]]:
    by_family: dict[str, list] = {}
    for task in ds.tasks:
        by_family.setdefault(task.family, []).append(task)
    rounds = [(level, image) for image in range(PREVIEW_IMAGES) for level in (0, -1)]  # breadth first: every codec
    return [(levels[level].name, ds.images[image]) for level, image in rounds for levels in by_family.values()
            if image < len(ds.images)]  # fmt: skip


def _readable_previews(paths: list[tuple[str, Path]], runs, problems: list[str]) -> list[tuple[str, np.ndarray]]:
    found = []
    for method, path in paths:
        try:
            found.append((method, read_rgb(path)))
        except DatasetError as exc:
            problems.append(f"{exc}; the panel of {method} is left out ({repair_hint(runs[method].path)})")
    return found


def _crop_figure(ds, task, stem, methods, runs, lpips, protocol, out, problems: list[str]) -> Path | None:
    paths = [(m, runs[m].previews_dir / task.folder / f"{stem}.png") for m in methods]
    previews = _readable_previews([(m, p) for m, p in paths if p.is_file()], runs, problems)
    if not previews:
        return None
    hr, lq = read_rgb(ds.hr_path(stem)), read_rgb(ds.lq_path(task, stem))
    region = get_protocol(protocol).region
    hr, lq = region(hr, stem), region(lq, stem)
    box = preview_box(hr.shape[0], hr.shape[1])
    hr_crop, lq_crop = box.cut(hr), box.cut(lq)
    panels = [("HR", hr_crop), (_label(f"LQ {task.name}", lq_crop, hr_crop, lpips.get((IDENTITY, task.name, stem))), lq_crop)]
    for method, crop in previews:
        panels.append((_label(method, crop, hr_crop, lpips.get((method, task.name, stem))), crop))
    title = f"{ds.name} / {stem} / {task.name} (crop PSNR against HR)"
    return plots.side_by_side(panels, title, out / f"crop_{task.folder}_{stem}.png")


def extremes(board: Leaderboard, dataset: str, methods: list[str], protocol: str, profile: str,
             count: int = 3) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Per method: its ``count`` best and worst (task, image) pairs by PSNR gain over the input, within one
    (dataset, protocol, profile) group."""
    frame = board.scores
    scores = frame[(frame["dataset"] == dataset) & (frame["metric"] == "psnr") & (frame["protocol"] == protocol)
                   & (frame["profile"] == profile)]  # fmt: skip
    identity = scores[scores["method"] == IDENTITY].set_index(["task", "image"])["value"]
    found = {}
    for method in methods:
        if method == IDENTITY:
            continue
        mine = scores[scores["method"] == method].set_index(["task", "image"])["value"]
        common = mine.index.intersection(identity.index)
        if common.empty:
            continue
        gain = pd.Series(capped(mine[common]) - capped(identity[common]), index=common, name="gain").sort_values()
        picked = pd.concat([gain.tail(count)[::-1], gain.head(count)])
        frame = picked.reset_index().assign(psnr=capped(mine[picked.index]), kind=["best"] * min(count, len(gain))
                                            + ["worst"] * (len(picked) - min(count, len(gain))))  # fmt: skip
        found[method] = frame
    return found
