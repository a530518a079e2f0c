"""The `glcf` command. Command bodies parse options and call one library function.

Training-side commands import torch-based packages lazily, so `glcf inspect` works on a box
that only has the runtime installed.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from glcf_cli.common import console, err_console
from glcf_runtime.errors import GlcfError
from glcf_runtime.requires import EXTRAS, MissingPackage, installed

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="GLCF anomaly detection: train on good images, export one ONNX/TensorRT graph, inspect frames.",
)
data_app = typer.Typer(no_args_is_help=True, help="Data sets: synthetic scenes for tests and demos.")
app.add_typer(data_app, name="data")


def _register() -> None:
    from glcf_cli import (
        bench_commands,
        engine_commands,
        eval_commands,
        export_commands,
        runtime_commands,
        train_commands,
    )

    train_commands.register(app, data_app)
    eval_commands.register(app)
    export_commands.register(app)
    runtime_commands.register(app)
    bench_commands.register(app)
    engine_commands.register(app)


_register()


def main() -> None:
    """Console entry point: user errors print one clear message and exit with status 2."""
    try:
        app()
    except GlcfError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C before the loop's own handler is in place (exit code 1)
        err_console.print("interrupted", highlight=False)
        sys.exit(1)
    except OSError as exc:  # a file system that refused: one line naming the path, no traceback
        err_console.print(f"[bold red]error:[/] {escape(os_error_line(exc))}", highlight=False)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top in EXTRAS and not installed(top):
            missing = MissingPackage(top, EXTRAS[top], who="this command")
            err_console.print(f"[bold red]error:[/] {escape(str(missing))}", highlight=False)
            sys.exit(2)
        raise


def os_error_line(exc: OSError) -> str:
    """``PATH: reason`` (``PATH → OTHER: reason`` for a rename or link) for an OSError."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return f"{reason} ({type(exc).__name__}); check the output folders are writable and have space"
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" → {exc.filename2}"
    return f"{where}: {reason}"


__all__ = ["app", "console", "main"]
