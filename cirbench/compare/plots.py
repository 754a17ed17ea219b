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

DPI = 100
LEGEND_INCHES = 1.9  # room right of the panels for the legend
PANEL_GAP = 6
TITLE_HEIGHT = 22
LABEL_HEIGHT = 20
SIDE_BY_SIDE_MIN = 192


def _figure(panels: int, panel_width: float, height: float, squeeze: bool = False):
    """A figure of ``panels`` panels with fixed margins and a strip on the right for the legend (drawn once: no
    tight-layout passes, which cost more than the drawing itself)."""
    width = panels * panel_width + LEGEND_INCHES + 0.4
    figure, axes = plt.subplots(1, panels, figsize=(width, height), squeeze=squeeze)
    figure.subplots_adjust(left=0.75 / width, right=1.0 - LEGEND_INCHES / width, bottom=0.6 / height,
                           top=1.0 - 0.45 / height, wspace=0.45)  # fmt: skip
    return figure, axes


def _title(axes, text: str) -> None:
    """A single panel's title, from the figure's left edge (a long title is never cut at the edge)."""
    axes.figure.suptitle(text, x=0.01, ha="left", fontsize="medium")


def _save(figure: plt.Figure, path: Path) -> Path:
    write_with_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI, pil_kwargs={"compress_level": 1}))
    plt.close(figure)
    return path


def _legend(axes) -> None:
    """The legend beside the plot, never over the data."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


IDENTITY_COLOUR = "#8c8c8c"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#393b79", "#637939", "#843c39")  # fmt: skip


_COLOURS: dict[str, str] = {}  # this report's assignment: one colour per method, in order of first use


def assign_colours(methods: list[str]) -> dict[str, str]:
    """One distinct colour per method (identity always grey): the palette in order, then evenly spaced hues."""
    others = [m for m in dict.fromkeys(methods) if m != "identity"]
    extra = [matplotlib.colors.to_hex(plt.cm.hsv(i / max(1, len(others)))) for i in range(len(others))]
    _COLOURS.clear()
    _COLOURS.update({m: (PALETTE[i] if i < len(PALETTE) else extra[i]) for i, m in enumerate(others)})
    _COLOURS["identity"] = IDENTITY_COLOUR
    return dict(_COLOURS)


def method_colour(method: str) -> str:
    """The colour assigned to ``method`` for this report; identity is always grey."""
    if method == "identity":
        return IDENTITY_COLOUR
    if method not in _COLOURS:
        _COLOURS[method] = PALETTE[(len(_COLOURS) - ("identity" in _COLOURS)) % len(PALETTE)]
    return _COLOURS[method]


def _limits(axes, values: np.ndarray) -> None:
    """Axes that show the differences: the central 96 % of the values plus a margin (one outlier cannot squash the
    rest; it is drawn at the edge), never forced to start at 0."""
    finite = values[np.isfinite(values)]
    if finite.size:
        low, high = (np.percentile(finite, (2, 98)) if finite.size >= 20 else (finite.min(), finite.max()))
        low, high = float(low), float(high)
        margin = max(0.15 * (high - low), 1e-3 * max(1.0, abs(high)))
        axes.set_ylim(low - margin, high + margin)


def codec_bars(family_means: pd.DataFrame, metric: str, families: list[str], path: Path) -> Path:
    """Per complete codec family, one bar per method (identity first, grey) with its 95 % interval.

    ``family_means``: method, family, value, low, high; families a method does not cover completely are absent.
    """
    table = family_means.pivot_table(index="family", columns="method", values="value", aggfunc="first")
    table = table.reindex([f for f in families if f in table.index])
    methods = sorted(table.columns, key=lambda m: (m != "identity", m))
    figure, axes = _figure(1, max(4.0, 0.55 * len(table) * max(1, len(methods)) / 2 + 1.5), 3.6, squeeze=True)
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
    _title(axes, f"{metric}: mean per codec (complete families only; bars: 95 % interval)")
    _legend(axes)
    _limits(axes, np.concatenate([family_means["low"].to_numpy(float), family_means["high"].to_numpy(float),
                                  family_means["value"].to_numpy(float)]))  # fmt: skip
    return _save(figure, path)


def level_curves(task_means: pd.DataFrame, metric: str, families: list[str], tasks: list[str], path: Path) -> Path:
    """One panel per codec family: ``metric`` against the task level, one line per method (identity dashed grey)."""
    rows = task_means[task_means["metric"] == metric]
    present = [f for f in families if f in set(rows["codec"])]
    figure, axes = _figure(max(1, len(present)), 2.8, 3.2)
    for panel, family in zip(axes[0], present, strict=False):
        of_family = rows[rows["codec"] == family]
        order = [t for t in tasks if t in set(of_family["task"])]
        labels = of_family.drop_duplicates("task").set_index("task")["level"].reindex(order).astype(str)
        for method, group in of_family.groupby("method"):
            by_task = group.set_index("task")["value"].reindex(order)
            style = {"linestyle": "--"} if method == "identity" else {}
            panel.plot(range(len(order)), by_task.replace([np.inf, -np.inf], np.nan).to_numpy(), marker="o",
                       label=method, color=method_colour(str(method)), **style)  # fmt: skip
        panel.set_xticks(range(len(order)), list(labels))  # levels as categories, in task-set order
        panel.set_title(family)
        panel.set_xlabel("level")
        panel.set_ylabel(metric)
        _limits(panel, of_family["value"].to_numpy(dtype=float))
    _legend(axes[0][-1])
    return _save(figure, path)


def perception_distortion(task_means: pd.DataFrame, x_metric: str, y_metric: str, path: Path) -> Path:
    """Per method, one point per task: ``y_metric`` (e.g. LPIPS) against ``x_metric`` (PSNR)."""
    wide = task_means.pivot_table(index=["method", "task"], columns="metric", values="value").reset_index()
    figure, axes = _figure(1, 4.2, 4.0, squeeze=True)
    for method, group in wide.groupby("method"):
        axes.scatter(group[x_metric], group[y_metric], label=method, s=22, color=method_colour(str(method)))
    axes.set_xlabel(x_metric)
    axes.set_ylabel(y_metric)
    _title(axes, f"{y_metric} against {x_metric} (one point per task)")
    _legend(axes)
    return _save(figure, path)


def rate_distortion(manifest: pd.DataFrame, path: Path) -> Path:
    """Inputs only: mean bpp against mean PSNR of the decoded images, one line per codec family."""
    lq = manifest[(manifest["kind"] == "lq") & manifest["bpp"].notna()]
    means = lq.groupby(["family", "task"], sort=False)[["bpp", "psnr"]].mean().reset_index()
    figure, axes = _figure(1, 4.2, 4.0, squeeze=True)
    for family, group in means.groupby("family", sort=False):
        group = group.sort_values("bpp")
        axes.plot(group["bpp"], group["psnr"], marker="o", label=family)
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel("PSNR of the decoded input (dB)")
    _title(axes, "Inputs: rate against distortion per codec")
    _legend(axes)
    return _save(figure, path)


def restored_rate_distortion(task_means: pd.DataFrame, bpp: dict[str, float], metric: str, families: list[str],
                             tasks: list[str], path: Path) -> Path:  # fmt: skip
    """Per codec family: the restored ``metric`` of each method against the input's bpp (identity: the codec's own
    curve, dashed grey); a method left of identity at equal quality saves bits."""
    rows = task_means[(task_means["metric"] == metric) & task_means["task"].isin(list(bpp))]
    present = [f for f in families if f in set(rows["codec"])]
    figure, axes = _figure(max(1, len(present)), 2.8, 3.2)
    for panel, family in zip(axes[0], present, strict=False):
        of_family = rows[rows["codec"] == family]
        order = sorted((t for t in tasks if t in set(of_family["task"])), key=lambda t: bpp[t])
        for method, group in of_family.groupby("method"):
            values = group.set_index("task")["value"].reindex(order).replace([np.inf, -np.inf], np.nan)
            style = {"linestyle": "--"} if method == "identity" else {}
            panel.plot([bpp[t] for t in order], values.to_numpy(), marker="o", label=method,
                       color=method_colour(str(method)), **style)  # fmt: skip
        panel.set_title(family)
        panel.set_xlabel("input bits per pixel")
        panel.set_ylabel(f"restored {metric}")
        _limits(panel, of_family["value"].to_numpy(dtype=float))
    _legend(axes[0][-1])
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
