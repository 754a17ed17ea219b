"""The leaderboard: one row per test set x protocol x profile x mode x method, a column per task x metric,
per-codec means, the overall mean and per-codec BD-rate, each with its bootstrap interval, Δ vs identity and N.

Read from the results stores of one or more built datasets; every run keeps its own row (see ResultsStore).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from cirbench.compare.bdrate import bd_rate
from cirbench.compare.cells import (
    GROUP,
    ID_COLUMNS,
    IDENTITY,
    OVERALL,
    SUFFIXES,
    directions,
    recorded_directions,
    value_columns,
    with_marks,
)
from cirbench.compare.statistics import BootstrapSettings, CellStatistics, cell_statistics
from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.results import SCORE_COLUMNS, ResultsStore

MODES = ("blind", "oracle")
DEFAULT_PROFILE = "cirbench"
__all__ = ["GROUP", "ID_COLUMNS", "IDENTITY", "MODES", "OVERALL", "SUFFIXES", "Leaderboard", "build_leaderboard"]


@dataclass
class Leaderboard:
    """The wide table plus what it was made from."""

    table: pd.DataFrame  # ID_COLUMNS + "tasks" + value columns "<group>/<metric>" and their companions (SUFFIXES)
    scores: pd.DataFrame  # long per-image scores (SCORE_COLUMNS + protocol, profile, mode, run)
    task_means: pd.DataFrame  # CELL_KEYS + value, n, low, high (per-task means)
    metrics: list[str]
    input_bpp: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset -> task -> mean input bpp
    notes: list[str] = field(default_factory=list)
    run_notes: list[str] = field(default_factory=list)  # runs not complete or unreadable (also in ``notes``)
    resampled: dict = field(default_factory=dict, repr=False)  # (row key, column) -> resampled statistic
    settings: BootstrapSettings = field(default_factory=BootstrapSettings)
    higher_better: dict[str, bool] = field(default_factory=dict)

    def groups(self) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
        """(dataset, protocol, profile) -> its rows: one table each."""
        return [(key, rows.reset_index(drop=True)) for key, rows in self.table.groupby(GROUP, sort=False)]

    def value_columns(self, summary: bool = False) -> list[str]:
        columns = [c for c in self.table.columns if c not in ID_COLUMNS and c != "tasks" and not _companion(c)]
        if summary:
            columns = [c for c in columns if _group(c).endswith((" mean", " BD-rate")) or _group(c) == OVERALL]
        return columns


def _companion(column: str) -> bool:
    return column.count("/") == 2 and column.rsplit("/", 1)[1] in SUFFIXES


def _group(column: str) -> str:
    return column.split("/")[0]


def _served_groups(records: list[dict], protocol: str | None, profile: str | None) -> set[tuple[str, str]]:
    """(protocol, profile) of the runs that have a finished task (a group of only failed runs needs no baseline)."""
    combos = {(r["protocol"], r["profile"]) for r in records if r.get("tasks_complete")}
    combos = {c for c in combos if (protocol is None or c[0] == protocol) and (profile is None or c[1] == profile)}
    if not combos and not records:
        combos = {(protocol or "full", profile or "cirbench")}
    return combos


def evaluate_identity_if_missing(ds: BuiltDataset, protocol: str | None, profile: str | None, warn) -> list[str]:
    """Evaluate the identity row where it is missing, saying so in one line first (no hidden work); returns one line
    per group whose identity row cannot be made (that group is still shown, without its Δ)."""
    from cirbench.errors import CirbenchError
    from cirbench.evaluation.evaluate import EvaluationSettings, evaluate

    records = [record for _, record in ResultsStore(ds.results_dir()).runs()]
    wanted, problems = set(ds.task_names()), []
    for combo in sorted(_served_groups(records, protocol, profile)):
        done = [
            r
            for r in records
            if r["method"] == IDENTITY and (r["protocol"], r["profile"]) == combo and wanted <= set(r["tasks_complete"])
        ]
        if done:
            continue
        if warn is not None:
            warn(f"evaluating the identity row first ({ds.name}, protocol {combo[0]}, profile {combo[1]})")
        try:
            evaluate(ds, EvaluationSettings(model=IDENTITY, protocol=combo[0], profile=combo[1]), warn=warn)
        except CirbenchError as exc:
            problems.append(f"{ds.name}, protocol {combo[0]}, profile {combo[1]}: no identity row ({exc})")
            if warn is not None:
                warn(problems[-1])
    return problems


def run_notes(ds: BuiltDataset) -> list[str]:
    """One line per run that is not complete (its status and task count) or cannot be read (left out, and how to
    repair it): no run leaves the leaderboard silently."""
    from cirbench.evaluation.runs import NOT_FINISHED, list_runs

    notes = []
    for s in list_runs(ds):
        if s.status in NOT_FINISHED:
            shown = "" if s.tasks_done else "; not in the table (no finished task)"
            why = f" ({s.reason})" if s.reason else ""
            notes.append(f"{ds.name}: run {s.label} ({s.protocol}, {s.profile}) is {s.status}{why}: "
                         f"{s.tasks_done}/{s.tasks_total} tasks{shown}")  # fmt: skip
        elif s.status == "unreadable":
            notes.append(f"{ds.name}: run {s.path.name} is unreadable and left out: {s.reason}")
    return notes


def _metric_order(scores: pd.DataFrame, profiles: list[str]) -> list[str]:
    """The profiles' result names that have scores, in profile order, then the metrics runs chose beside their
    profile (``--metrics niqe,pyiqa:musiq``) by name; companions (kid_std, fid_n_ref) stay in the long scores only."""
    from cirbench.evaluation.results import SET_LEVEL_IMAGE
    from cirbench.metrics.profiles import get_profile

    order: list[str] = []
    for name in profiles:
        order += [spec.result_name for spec in get_profile(name).metrics if spec.result_name not in order]
    present = set(scores["metric"])
    per_image = set(scores.loc[scores["image"] != SET_LEVEL_IMAGE, "metric"])
    set_level = present - per_image
    extras = sorted(m for m in present - set(order)
                    if m in per_image or not any(m.startswith(f"{other}_") for other in set_level | set(order)))  # fmt: skip
    return [m for m in order if m in present] + extras


def input_bpp(ds: BuiltDataset) -> dict[str, float]:
    """Mean input bits per pixel of every task of ``ds``, from its manifest."""
    lq = ds.manifest[ds.manifest["kind"] == "lq"]
    return {str(task): float(group["bpp"].mean()) for task, group in lq.groupby("task", sort=False)}


def _bd_rates(task_means: pd.DataFrame, bpp: dict[str, dict[str, float]], families: list[str]) -> dict[tuple, dict]:
    """row key -> {"<family> BD-rate/psnr": percent} against the identity row of the same test set."""
    out: dict[tuple, dict[str, float]] = {}
    psnr = task_means[task_means["metric"] == "psnr"]
    for key, group in psnr.groupby(ID_COLUMNS, sort=False):
        anchor = psnr[(psnr["dataset"] == key[0]) & (psnr["protocol"] == key[1]) & (psnr["profile"] == key[2])
                      & (psnr["method"] == IDENTITY)].set_index("task")["value"]  # fmt: skip
        rates = bpp.get(key[0], {})
        for family in families:
            mine = group[group["codec"] == family].set_index("task")["value"]
            tasks = [t for t in mine.index if t in anchor.index and t in rates]
            if len(tasks) < 2 or len(tasks) < len(mine):
                continue
            result = bd_rate([rates[t] for t in tasks], anchor[tasks], [rates[t] for t in tasks], mine[tasks])
            out.setdefault(key, {})[f"{family} BD-rate/psnr"] = result.percent
    return out


def _ordered(table: pd.DataFrame, base_order: list[str]) -> pd.DataFrame:
    columns = [c for c in ID_COLUMNS + ["tasks"] if c in table.columns]
    for base in base_order:
        columns += [c for c in (base, *(f"{base}/{s}" for s in SUFFIXES)) if c in table.columns]
    rank = table["method"].map(lambda m: (0 if m == IDENTITY else 1, m))
    table = table.assign(_rank=rank).sort_values(["dataset", "protocol", "profile", "mode", "_rank"])
    return table[columns].reset_index(drop=True)


def _wide(stats: CellStatistics, bd: dict, tasks: list[str], families: list[str], metrics: list[str],
          higher_better: dict[str, bool]):  # fmt: skip
    columns = value_columns(stats, families, metrics)
    rows = columns.rows
    for key, entry in bd.items():
        rows.setdefault(key, {}).update(entry)
    coverage = stats.cells.groupby(ID_COLUMNS, sort=False)["task"].nunique()
    per_set = stats.cells.groupby("dataset")["task"].nunique()
    records = [{**dict(zip(ID_COLUMNS, key, strict=True)), "tasks": f"{coverage.get(key, 0)}/{per_set[key[0]]}", **v}
               for key, v in rows.items()]  # fmt: skip
    order = [f"{t}/{m}" for m in metrics for t in tasks] + [f"{f} mean/{m}" for m in metrics for f in families]
    order += [f"{OVERALL}/{m}" for m in metrics] + [f"{f} BD-rate/psnr" for f in families]
    table = with_marks(pd.DataFrame(records), columns.resampled, stats.settings, higher_better)
    return _ordered(table, order), columns.resampled


def _results_only(scores: pd.DataFrame, include: bool) -> tuple[pd.DataFrame, list[str]]:
    """Scores of runs that are results; non-results dropped with one note, or (``include``) kept and labelled."""
    if scores.empty or "is_result" not in scores.columns:
        return scores, []
    junk = scores[~scores["is_result"].astype(bool)]
    if junk.empty:
        return scores, []
    named = junk.drop_duplicates("run")[["dataset", "method", "not_a_result"]]
    if include:
        labels = {m: f"{m} [not a result: {r or 'not a result'}]" for m, r in zip(named["method"], named["not_a_result"], strict=True)}
        return scores.assign(method=scores["method"].map(lambda m: labels.get(m, m))), []
    listed = ", ".join(f"{d}/{m} ({r or 'not a result'})" for d, m, r in named.itertuples(index=False))
    return scores[scores["is_result"].astype(bool)], [f"not ranked, not results: {listed}; --all shows them"]


def build_leaderboard(
    datasets: list[BuiltDataset],
    protocol: str | None = None,
    profile: str | None = DEFAULT_PROFILE,
    ensure_identity: bool = True,
    warn: Callable[[str], None] | None = None,
    mode: str | None = None,
    bootstrap: BootstrapSettings | None = None,
    include_non_results: bool = False,
) -> Leaderboard:
    """Every run of every method on every dataset, one table per (dataset, protocol, profile); means over images,
    then over tasks, with paired intervals. ``profile=None`` keeps every profile (each its own table)."""
    frames, tasks, families, bpp, runs, recorded = [], [], [], {}, [], {}
    for ds in datasets:
        if ensure_identity:
            runs += evaluate_identity_if_missing(ds, protocol, profile, warn)
        store = ResultsStore(ds.results_dir())
        frames.append(store.all_scores())
        recorded.update(recorded_directions([record for _, record in store.runs()]))
        runs += run_notes(ds)
        tasks = list(dict.fromkeys(tasks + [t.name for t in ds.tasks]))
        families = list(dict.fromkeys(families + [t.family for t in ds.tasks]))
        bpp[ds.name] = input_bpp(ds)
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*SCORE_COLUMNS, "mode"])
    for column, wanted in (("protocol", protocol), ("profile", profile)):
        if wanted is not None:
            scores = scores[scores[column] == wanted]
    if mode is not None:  # identity is the baseline of both groups
        scores = scores[(scores["mode"] == mode) | (scores["method"] == IDENTITY)]
    scores, excluded = _results_only(scores.reset_index(drop=True), include_non_results)
    scores = scores.reset_index(drop=True)
    runs += excluded
    settings = bootstrap or BootstrapSettings()
    stats = cell_statistics(scores, settings)
    metrics = _metric_order(scores, sorted(set(scores["profile"]))) if not scores.empty else []
    if scores.empty:
        return Leaderboard(pd.DataFrame(columns=ID_COLUMNS), scores, stats.cells, metrics, bpp, runs, runs,
                           settings=settings)  # fmt: skip
    bd = _bd_rates(stats.cells, bpp, families)
    higher_better = directions(metrics, recorded)
    table, resampled = _wide(stats, bd, tasks, families, metrics, higher_better)
    return Leaderboard(table, scores, stats.cells, metrics, bpp, _notes(stats, metrics) + runs, runs, resampled,
                       settings, higher_better)  # fmt: skip


def _notes(stats: CellStatistics, metrics: list[str]) -> list[str]:
    from cirbench.compare.statistics import NO_INTERVAL
    from cirbench.metrics.aggregate import CONVENTION

    settings = stats.settings
    notes = [
        f"intervals: {settings.level:.0%} paired bootstrap over images ({settings.resamples} resamples, seed "
        f"{settings.seed}; every method of a test set sees the same resamples). Identity's cells show the interval "
        "of its mean; every other cell shows its Δ to identity and the interval of that difference (the CSV/JSON "
        "keep both: /low, /high of the value and /delta_low, /delta_high of Δ), as `cirbench compare` computes it",
        f"best (bold): the leading value whose paired {settings.level:.0%} interval against every other method of "
        "its table excludes 0; tied (italic): the leaders whose paired interval against the best contains 0. "
        "Set-level metrics and BD-rates have no interval and are never marked",
        f"means: {CONVENTION}; family and overall means only over complete families",
        "BD-rate (%): Bjøntegaard delta rate of the restored PSNR against the input's over each family's levels "
        "(PCHIP; negative = bits saved at equal PSNR; 3 levels: indicative)",
    ]
    set_level = [m for m in metrics if stats.cells.loc[stats.cells["metric"] == m, "n"].isna().all()]
    if set_level:
        notes.append(f"{', '.join(set_level)}: {NO_INTERVAL}")
    return notes
