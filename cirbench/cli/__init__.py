"""The ``cirbench`` command line: one typer app; each module of this package adds its commands.

Only this layer turns typed CirbenchErrors into one-line messages and exit codes.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click
import typer
from rich.console import Console

from cirbench.errors import CirbenchError

app = typer.Typer(
    name="cirbench",
    help="Build, evaluate and compare universal compressed-image-restoration benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_ERRORS = 1
EXIT_USAGE = 2


def _load_commands() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    _load_commands()
    try:
        result = app(args=argv, standalone_mode=False)
    except CirbenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return EXIT_ERRORS
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted: finished outputs are kept; rerun the same command to resume")
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
