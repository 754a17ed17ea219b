"""``cirbench weights list|download|verify|import|keys|check|convert``: the canonical pretrained files in the torch hub cache.

Downloads are sha256-verified and renamed into place atomically; offline, ``import`` adds files fetched elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from cirbench.cli import app, console, err_console
from cirbench.errors import CirbenchError

weights_app = typer.Typer(help="List, download, verify and import pretrained weight files.", no_args_is_help=True,
                          rich_markup_mode=None)
app.add_typer(weights_app, name="weights")


def _catalogue():
    """Every registered file (metrics, codecs and models register theirs)."""
    from cirbench.weights.manager import catalogue

    return catalogue()


def _selected(files: list[str] | None):
    from cirbench.weights.manager import get_weight

    known = _catalogue()
    return [get_weight(name) for name in files] if files else list(known.values())


def _size(path: Path) -> str:
    if not path.is_file():
        return "-"
    size = float(path.stat().st_size)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return "-"


_STATUS_WORDS = {"ok": "ok (sha256 verified)", "unverified": "unverified (no published hash)"}


@weights_app.command("list")
def list_weights(
    show_all: Annotated[bool, typer.Option("--all", help="Every registered file, not only what the default tasks, models and metrics need")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Tab-separated lines: file, status, size, needed by, url")] = False,
) -> None:
    """The files the default task sets, the registered models and the default metrics need: status, size, users."""
    from cirbench.weights.manager import cache_dir, cached_path, weight_status
    from cirbench.weights.users import needed_by

    users = needed_by()
    specs = [spec for spec in _catalogue().values() if show_all or spec.filename in users]
    rows = [(spec.filename, weight_status(spec), _size(cached_path(spec)), ", ".join(users.get(spec.filename, [])) or "-",
             spec.url) for spec in specs]  # fmt: skip
    if plain:
        for row in rows:
            typer.echo("\t".join(row))
        return
    hidden = len(_catalogue()) - len(specs)
    table = Table(title=f"weights cache: {cache_dir()}" + (f" ({hidden} more with --all)" if hidden else ""),
                  title_justify="left")  # fmt: skip
    for column in ("file", "status", "size", "needed by", "url"):
        table.add_column(column, overflow="fold", no_wrap=column in ("file", "size"))
    for file, status, size, needs, url in rows:
        colour = {"ok": "green", "unverified": "green", "missing": "yellow"}.get(status, "red")
        table.add_row(file, f"[{colour}]{_STATUS_WORDS.get(status, status)}[/]", size, needs, url)
    (console if console.is_terminal else Console(file=sys.stdout, width=220)).print(table)


@weights_app.command("download")
def download(
    files: Annotated[list[str] | None, typer.Argument(help="File names (default: every missing file)")] = None,
) -> None:
    """Download files into the cache, verifying their sha256 prefix; existing verified files are kept."""
    import os

    from cirbench.weights.manager import WeightsCorrupt, WeightsUnavailable, ensure_weight, weight_status

    failures, unchecked = [], []
    offline = os.environ.get("CIRBENCH_OFFLINE") == "1"
    for spec in _selected(files):
        if not files and weight_status(spec) in ("ok", "unverified"):
            continue
        if not files and not spec.has_checksum:
            unchecked.append(spec.filename)  # no published hash (and often GBs): only when named
            continue
        if offline:  # one line per file, no progress bar for a download that cannot start
            failures.append(spec.filename)
            err_console.print(f"[yellow]not downloaded[/] {spec.filename}: downloads are off (CIRBENCH_OFFLINE=1); "
                              f"get {spec.url} elsewhere, then `cirbench weights import FILE`", highlight=False,
                              soft_wrap=True)  # fmt: skip
            continue
        try:
            path = _download_one(spec, ensure_weight)
        except (WeightsUnavailable, WeightsCorrupt) as exc:
            failures.append(spec.filename)
            err_console.print(f"[red]not downloaded[/] {exc}", highlight=False, soft_wrap=True)
            continue
        console.print(f"[green]ok[/] {path}", highlight=False, soft_wrap=True)
    if unchecked:
        console.print(f"[yellow]skipped[/] {len(unchecked)} file(s) with no published checksum; name them to "
                      "download: " + ", ".join(unchecked), highlight=False, soft_wrap=True)  # fmt: skip
    if failures:
        raise CirbenchError(f"{len(failures)} file(s) not downloaded: {', '.join(failures)}")


def _download_one(spec, ensure_weight) -> Path:
    """One file, with a progress bar on a terminal (none on a pipe, so a log holds one line per file)."""
    if not err_console.is_terminal:
        return ensure_weight(spec.filename)
    columns = (TextColumn(spec.filename), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("download", total=None)
        return ensure_weight(spec.filename, progress=lambda done, total: bar.update(task, completed=done, total=total or None))


@weights_app.command("verify")
def verify(
    files: Annotated[list[str] | None, typer.Argument(help="File names (default: every cached file)")] = None,
) -> None:
    """Re-hash cached files; fails when one is corrupt (or when a named file is missing)."""
    from cirbench.weights.manager import cached_path, weight_status

    bad, unverified = [], []
    for spec in _selected(files):
        status = weight_status(spec)
        if status == "missing" and not files:
            continue
        colour = {"ok": "green", "unverified": "yellow"}.get(status, "red")
        console.print(f"[{colour}]{status}[/] {cached_path(spec)}", highlight=False, soft_wrap=True)
        if status == "unverified":
            unverified.append(spec.filename)
        elif status != "ok":
            bad.append(f"{spec.filename} ({status})")
    if unverified:
        console.print(
            f"{len(unverified)} file(s) have no published checksum, so their bytes cannot be verified; their "
            "key layout was checked when they were imported",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    if bad:
        raise CirbenchError(f"verification failed for {', '.join(bad)}; delete and download again, or import")


@weights_app.command("import")
def import_files(
    paths: Annotated[list[Path], typer.Argument(help="Files downloaded elsewhere, with their canonical names")],
    pyiqa: Annotated[bool, typer.Option("--pyiqa", help="A file a pyiqa metric downloads itself: into pyiqa's cache")] = False,
    torch_hub: Annotated[bool, typer.Option("--torch-hub", help="A torchvision file pyiqa asks for: into torch hub's checkpoints")] = False,
) -> None:
    """Copy files into the cache after checking name, sha256 (where published) and key layout."""
    from cirbench.weights.importer import import_external, import_weight

    if pyiqa and torch_hub:
        raise typer.BadParameter("choose one of --pyiqa and --torch-hub")
    for path in paths:
        if pyiqa or torch_hub:
            target = import_external(path, "pyiqa" if pyiqa else "torch-hub")
        else:
            target = import_weight(path)
        console.print(f"[green]imported[/] {target}")


@weights_app.command("keys")
def keys(
    name: Annotated[str, typer.Argument(help="Canonical file name, e.g. promptcir_model_best.pth")],
    output_format: Annotated[str, typer.Option("--format", help="jsonl (one JSON object per line) or table")] = "jsonl",
) -> None:
    """Print the expected layout of a canonical file: one {key, shape, dtype} JSON object per line, or a table."""
    import json

    from cirbench.weights.layouts import expected_layout

    if output_format not in ("jsonl", "table"):
        raise typer.BadParameter("must be jsonl or table", param_hint="--format")
    records = expected_layout(name).as_records()
    if output_format == "jsonl":
        typer.echo("\n".join(json.dumps(r) for r in records))
        return
    width = max(len(r["key"]) for r in records)
    for r in records:
        shape = "x".join("*" if d == -1 else str(d) for d in r["shape"]) or "scalar"
        typer.echo(f"{r['key']:<{width}}  {shape:<20}  {r['dtype']}")


@weights_app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="A local weight file")],
    as_name: Annotated[str | None, typer.Option("--as", help="Canonical file name to check against (default: its name)")] = None,
) -> None:
    """Compare a local file's keys, shapes and dtypes with a canonical layout without building the model."""
    from cirbench.weights.layouts import check_file

    report = check_file(path, as_name)
    for key in report.tolerated:
        console.print(f"[yellow]tolerated:[/] {key}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise CirbenchError(f"{path} does not match {as_name or path.name}: {report.summary()}")
    console.print(f"[green]ok[/] {path}: matches {as_name or path.name}", highlight=False, soft_wrap=True)


@weights_app.command("convert")
def convert(
    path: Annotated[Path, typer.Argument(help="An official weight file, e.g. MoE-DiffIR_DACLIP.ckpt")],
    as_name: Annotated[str | None, typer.Option("--as", help="Canonical file name to check against (default: its name)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output .safetensors (default: beside the input)")] = None,
) -> None:
    """Check a file strictly against its layout and write its weights as safetensors (nothing pickled survives)."""
    from cirbench.weights.convert import convert_file

    target, report = convert_file(path, out, as_name)
    for key in report.get("tolerated_keys", []):
        console.print(f"[yellow]tolerated, not written:[/] {key}", highlight=False, soft_wrap=True)
    console.print(f"[green]wrote[/] {target} (from {path.name}, sha256 {report['sha256'][:12]})", highlight=False, soft_wrap=True)
