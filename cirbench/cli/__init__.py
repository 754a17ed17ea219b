"""The ``cirbench`` command line: one typer app; each module of this package adds its commands.

Only this layer turns typed CirbenchErrors into one-line messages and exit codes (1 errors, 2 usage, 130 interrupt).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback
from typing import Annotated

import typer
from rich.console import Console

from cirbench.errors import CirbenchError

# The click that typer runs on: recent typer releases vendor their own copy (typer._click), older ones use click.
# Taking it from typer's own BadParameter catches the exceptions typer really raises, whichever copy that is.
_click_errors = sys.modules[typer.BadParameter.__module__]
ClickException = _click_errors.ClickException
_ABORT = (typer.Abort, getattr(_click_errors, "Abort", typer.Abort), KeyboardInterrupt)
_EXIT = (typer.Exit, getattr(_click_errors, "Exit", typer.Exit))
INTERRUPTED = "interrupted: finished outputs are kept; rerun the same command to resume"

app = typer.Typer(
    name="cirbench",
    help="Build, evaluate and compare universal compressed-image-restoration benchmarks.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: flags without a fake "<bool>" value
)
console = Console()
err_console = Console(stderr=True)

EXIT_ERRORS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEBUG_HINT = "run with --debug for the traceback"
_state = {"debug": os.environ.get("CIRBENCH_DEBUG") == "1"}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the Python traceback of an unexpected error")] = False,
) -> None:
    """Build, evaluate and compare universal compressed-image-restoration benchmarks."""
    _state["debug"] = _state["debug"] or debug


def note(message: str) -> None:
    """The one wording of every notice on the way (skipped metrics, the identity row evaluated first): ``note:``."""
    err_console.print(f"[yellow]note:[/] {message}", highlight=False, soft_wrap=True)


def device_option(value: str | None) -> str | None:
    """typer callback of every --device: a usage error (exit 2) naming the valid forms."""
    from cirbench.models import check_device

    if value is not None:
        try:
            check_device(value)
        except CirbenchError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def scheduler_option(value: str | None) -> str | None:
    """typer callback of every --scheduler: a usage error (exit 2) naming the valid address forms."""
    from cirbench.build.runner import check_scheduler

    if value:
        try:
            check_scheduler(value)
        except CirbenchError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def split_names(values: list[str] | None) -> tuple[str, ...]:
    """Task names from repeatable, comma-separated ``--tasks`` values."""
    return tuple(n.strip() for v in values or [] for n in v.split(",") if n.strip())


def task_names(values: list[str] | None) -> tuple[str, ...]:
    """``--tasks`` values as task names; a task-set name or TOML path there is a usage error naming --task-set."""
    from cirbench.tasks import shipped_tasksets

    names = split_names(values)
    for name in names:
        if name in shipped_tasksets() or name.endswith(".toml"):
            raise typer.BadParameter(
                f"'{name}' is a task set; --tasks takes task names (e.g. JPEG_10,HEVC_37). Use --task-set {name}"
                " when building",
                param_hint="--tasks",
            )
    return names


def _load_commands() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)


def _usage(exc: ClickException) -> int:
    """Click's own short usage message and exit 2; a bare ``cirbench`` (no arguments) prints the help, exit 0."""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and type(exc).__name__ == "NoArgsIsHelpError":
        print(ctx.get_help())
        return 0
    exc.show()
    return EXIT_USAGE if exc.exit_code == 2 else int(exc.exit_code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    _load_commands()
    _state["debug"] = os.environ.get("CIRBENCH_DEBUG") == "1"
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["--help"]
    try:
        result = app(args=args, prog_name="cirbench", standalone_mode=False)
    except CirbenchError as exc:
        _error(str(exc))
        return EXIT_ERRORS
    except ClickException as exc:
        return _usage(exc)
    except _ABORT:
        err_console.print(INTERRUPTED)
        return EXIT_INTERRUPTED
    except _EXIT as exc:
        if exc.exit_code == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into Exit(130)
            err_console.print(INTERRUPTED)
        return int(exc.exit_code)
    except Exception as exc:  # noqa: BLE001  (the last line of defence: one line, the traceback on request)
        if _state["debug"]:
            traceback.print_exc()
        else:
            _error(f"internal error: {type(exc).__name__}: {exc} ({DEBUG_HINT})")
        return EXIT_ERRORS
    if result == EXIT_INTERRUPTED:  # outside standalone mode typer returns Exit codes instead of raising them
        err_console.print(INTERRUPTED)
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
