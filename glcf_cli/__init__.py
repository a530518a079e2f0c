"""The `glcf` command. Command bodies parse options and call one library function.

Training-side commands import torch-based packages lazily, so `glcf inspect` works on a box
that only has the runtime installed.
"""

from __future__ import annotations

import sys

import typer

from glcf_cli.common import console, err_console
from glcf_runtime.errors import GlcfError

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


_register()


def main() -> None:
    """Console entry point: user errors print one clear message and exit with status 2."""
    try:
        app()
    except GlcfError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"torch", "timm", "onnx", "onnxslim", "safetensors"}:
            err_console.print(
                f"[bold red]error:[/] this command needs {exc.name}, which is not installed. "
                "Install the training/export extras: pip install 'glcf[all]'", highlight=False)
            sys.exit(2)
        raise


__all__ = ["app", "console", "main"]
