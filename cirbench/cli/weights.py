"""``cirbench weights list|download|verify|import|keys|check|convert``: the canonical pretrained files in the torch hub cache.

Downloads are sha256-verified and renamed into place atomically; offline, ``import`` adds files fetched elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
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


@weights_app.command("list")
def list_weights(
    urls: Annotated[bool, typer.Option("--urls", help="Show the download URL of each file")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Tab-separated lines: file, status, url, purpose")] = False,
) -> None:
    """Every canonical file, its cache status (ok, missing, corrupt) and what uses it."""
    from cirbench.weights.manager import cache_dir, weight_status

    if plain:
        for spec in _catalogue().values():
            typer.echo("\t".join((spec.filename, weight_status(spec), spec.url, spec.purpose)))
        return

    table = Table(title=f"weights cache: {cache_dir()}")
    for column in ("file", "status", "purpose", "licence") + (("url",) if urls else ()):
        table.add_column(column, no_wrap=column == "file", overflow="fold")
    for spec in _catalogue().values():
        status = weight_status(spec)
        colour = {"ok": "green", "missing": "yellow"}.get(status, "red")
        row = [spec.filename, f"[{colour}]{status}[/]", spec.purpose, spec.licence]
        table.add_row(*(row + ([spec.url] if urls else [])))
    console.print(table)


@weights_app.command("download")
def download(
    files: Annotated[list[str] | None, typer.Argument(help="File names (default: every missing file)")] = None,
) -> None:
    """Download files into the cache, verifying their sha256 prefix; existing verified files are kept."""
    from cirbench.weights.manager import WeightsCorrupt, WeightsUnavailable, ensure_weight, weight_status

    failures = []
    unchecked = []
    for spec in _selected(files):
        if not files and weight_status(spec) in ("ok", "unverified"):
            continue
        if not files and not spec.has_checksum:
            unchecked.append(spec.filename)  # no published hash (and often GBs): only when named
            continue
        with Progress(
            TextColumn(spec.filename),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("download", total=None)

            def advance(done: int, total: int, task=task, bar=bar) -> None:
                bar.update(task, completed=done, total=total or None)

            try:
                path = ensure_weight(spec.filename, progress=advance)
            except (WeightsUnavailable, WeightsCorrupt) as exc:
                failures.append(str(exc))
                continue
        console.print(f"[green]ok[/] {path}")
    if unchecked:
        console.print(
            f"[yellow]skipped[/] {len(unchecked)} file(s) with no published checksum; name them to download: "
            + ", ".join(unchecked),
            highlight=False,
        )
    if failures:
        raise CirbenchError(f"{len(failures)} file(s) not downloaded: " + " | ".join(failures))


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
) -> None:
    """Copy files into the cache after checking name, sha256 (where published) and key layout."""
    from cirbench.weights.importer import import_weight

    for path in paths:
        console.print(f"[green]imported[/] {import_weight(path)}")


@weights_app.command("keys")
def keys(name: Annotated[str, typer.Argument(help="Canonical file name, e.g. promptcir_model_best.pth")]) -> None:
    """Print the expected layout of a canonical file as JSON: a list of {key, shape, dtype}."""
    import json

    from cirbench.weights.layouts import expected_layout

    typer.echo(json.dumps(expected_layout(name).as_records(), indent=1))


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
