"""``cirbench models``: every registered model (built-in or from an installed package), without building any.

Name, blind or oracle, whether its weights are installed, and the first line of its factory's documentation.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cirbench.cli import app, console


@app.command("models")
def models_command(
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List every registered model: name, mode (blind/oracle), weights installed or missing, description."""
    from cirbench.models import describe_models

    if output_format not in ("table", "json"):
        raise typer.BadParameter("must be table or json", param_hint="--format")
    rows = describe_models()
    if output_format == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} registered models (`cirbench evaluate --model NAME`)", title_justify="left")
    for column in ("name", "mode", "weights", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        colour = "green" if row["weights"] in ("installed", "none needed", "packaged") else "yellow"
        table.add_row(row["name"], row["mode"], f"[{colour}]{row['weights']}[/]", row["description"])
    (console if console.is_terminal else Console(file=sys.stdout, width=200)).print(table)
