"""PNG plots of the report: per-codec bars, per-level curves, perception vs distortion, input rate vs distortion.

Matplotlib with the Agg backend (no display); every figure is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cirbench.fileio import write_with_atomic  # noqa: E402

DPI = 110
PANEL_GAP = 6
TITLE_HEIGHT = 22
LABEL_HEIGHT = 20
SIDE_BY_SIDE_MIN = 192


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    write_with_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))
    plt.close(figure)
    return path


IDENTITY_COLOUR = "#8c8c8c"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#393b79", "#637939", "#843c39")  # fmt: skip


def method_colour(method: str) -> str:
    """The same colour for a method in every report (from a hash of its name); identity is always grey."""
    import zlib

    if method == "identity":
        return IDENTITY_COLOUR
    return PALETTE[zlib.crc32(method.encode("utf-8")) % len(PALETTE)]


def _limits(axes, values: np.ndarray) -> None:
    """Axes that show the differences: the data range plus a margin, never forced to start at 0."""
    finite = values[np.isfinite(values)]
    if finite.size:
        low, high = float(finite.min()), float(finite.max())
        margin = max(0.15 * (high - low), 1e-3 * max(1.0, abs(high)))
        axes.set_ylim(low - margin, high + margin)


def codec_bars(family_means: pd.DataFrame, metric: str, families: list[str], path: Path) -> Path:
    """Per complete codec family, one bar per method (identity first, grey) with its 95 % interval.

    ``family_means``: method, family, value, low, high; families a method does not cover completely are absent.
    """
    table = family_means.pivot_table(index="family", columns="method", values="value", aggfunc="first")
    table = table.reindex([f for f in families if f in table.index])
    methods = sorted(table.columns, key=lambda m: (m != "identity", m))
    figure, axes = plt.subplots(figsize=(max(5.0, 1.1 * len(table) * max(1, len(methods)) / 2 + 2), 3.6))
    width = 0.8 / max(1, len(methods))
    positions = np.arange(len(table))
    for index, method in enumerate(methods):
        rows = family_means[family_means["method"] == method].set_index("family").reindex(table.index)
        values = rows["value"].replace([np.inf, -np.inf], np.nan).to_numpy(dtype=float)
        errors = np.vstack([values - rows["low"].to_numpy(dtype=float), rows["high"].to_numpy(dtype=float) - values])
        axes.bar(positions + (index - (len(methods) - 1) / 2) * width, values, width, label=method,
                 color=method_colour(method), yerr=np.nan_to_num(errors), capsize=2)  # fmt: skip
    axes.set_xticks(positions, list(table.index))
    axes.set_ylabel(metric)
    axes.set_title(f"{metric}: mean per codec (complete families only; bars: 95 % interval)")
    axes.legend(fontsize="small")
    _limits(axes, np.concatenate([family_means["low"].to_numpy(float), family_means["high"].to_numpy(float),
                                  family_means["value"].to_numpy(float)]))  # fmt: skip
    return _save(figure, path)


def level_curves(task_means: pd.DataFrame, metric: str, families: list[str], tasks: list[str], path: Path) -> Path:
    """One panel per codec family: ``metric`` against the task level, one line per method (identity dashed grey)."""
    rows = task_means[task_means["metric"] == metric]
    present = [f for f in families if f in set(rows["codec"])]
    figure, axes = plt.subplots(1, max(1, len(present)), figsize=(3.2 * max(1, len(present)), 3.2), squeeze=False)
    for panel, family in zip(axes[0], present, strict=False):
        of_family = rows[rows["codec"] == family]
        order = [t for t in tasks if t in set(of_family["task"])]
        for method, group in of_family.groupby("method"):
            by_task = group.set_index("task")["value"].reindex(order)
            levels = group.drop_duplicates("task").set_index("task")["level"].reindex(order)
            style = {"linestyle": "--"} if method == "identity" else {}
            panel.plot(list(levels), by_task.replace([np.inf, -np.inf], np.nan).to_numpy(), marker="o", label=method,
                       color=method_colour(str(method)), **style)  # fmt: skip
        panel.set_title(family)
        panel.set_xlabel("level")
        panel.set_ylabel(metric)
        _limits(panel, of_family["value"].to_numpy(dtype=float))
    axes[0][0].legend(fontsize="small")
    return _save(figure, path)


def perception_distortion(task_means: pd.DataFrame, x_metric: str, y_metric: str, path: Path) -> Path:
    """Per method, one point per task: ``y_metric`` (e.g. LPIPS) against ``x_metric`` (PSNR)."""
    wide = task_means.pivot_table(index=["method", "task"], columns="metric", values="value").reset_index()
    figure, axes = plt.subplots(figsize=(5.2, 4.0))
    for method, group in wide.groupby("method"):
        axes.scatter(group[x_metric], group[y_metric], label=method, s=22, color=method_colour(str(method)))
    axes.set_xlabel(x_metric)
    axes.set_ylabel(y_metric)
    axes.set_title(f"{y_metric} against {x_metric} (one point per task)")
    axes.legend(fontsize="small")
    return _save(figure, path)


def rate_distortion(manifest: pd.DataFrame, path: Path) -> Path:
    """Inputs only: mean bpp against mean PSNR of the decoded images, one line per codec family."""
    lq = manifest[(manifest["kind"] == "lq") & manifest["bpp"].notna()]
    means = lq.groupby(["family", "task"], sort=False)[["bpp", "psnr"]].mean().reset_index()
    figure, axes = plt.subplots(figsize=(5.2, 4.0))
    for family, group in means.groupby("family", sort=False):
        group = group.sort_values("bpp")
        axes.plot(group["bpp"], group["psnr"], marker="o", label=family)
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel("PSNR of the decoded input (dB)")
    axes.set_title("Inputs: rate against distortion per codec")
    axes.legend(fontsize="small")
    return _save(figure, path)


def panel_scale(height: int, width: int) -> int:
    """Integer nearest-neighbour zoom so that small crops are shown at least ~192 px tall (at most 4x)."""
    return int(min(4, max(1, -(-SIDE_BY_SIDE_MIN // max(1, min(height, width))))))


def side_by_side(panels: list[tuple[str, np.ndarray]], title: str, path: Path) -> Path:
    """HR | LQ | each method: same crop, zoomed by panel_scale (nearest), PANEL_GAP px apart, labels above.

    Panel i sits at x = i * (w * zoom + PANEL_GAP), y = TITLE_HEIGHT + LABEL_HEIGHT (exact pixels, testable).
    """
    from PIL import Image, ImageDraw, ImageFont

    height, width = panels[0][1].shape[:2]
    zoom = panel_scale(height, width)
    step = width * zoom + PANEL_GAP
    canvas = Image.new("RGB", (step * len(panels) - PANEL_GAP, TITLE_HEIGHT + LABEL_HEIGHT + height * zoom), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    draw.text((2, 3), title, fill="black", font=font)
    for index, (label, rgb) in enumerate(panels):
        zoomed = np.repeat(np.repeat(rgb, zoom, axis=0), zoom, axis=1)
        canvas.paste(Image.fromarray(np.ascontiguousarray(zoomed)), (index * step, TITLE_HEIGHT + LABEL_HEIGHT))
        draw.text((index * step + 2, TITLE_HEIGHT + 3), label, fill="black", font=font)
    write_with_atomic(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return path
