"""`glcf engine build | check`: TensorRT engines on the device that runs them (runtime extra + trt;
no torch, no run folder)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from glcf_cli.common import console

Opt = typer.Option
engine_app = typer.Typer(
    no_args_is_help=True,
    help="TensorRT engines, built on the device that runs them (no torch needed).",
)


def register(app: typer.Typer) -> None:
    app.add_typer(engine_app, name="engine")


def _log(message: str) -> None:
    console.print(escape(message), highlight=False)


def _batches(text: str) -> tuple[int, int, int]:
    """``--batch 1,8`` → the profile (min, opt, max) = (1, 1, 8); ``--batch 4`` (or ``4,4,4``)
    → (4, 4, 4), the one fixed batch a DLA engine takes."""
    from glcf_cli.preflight import check_batches

    values = sorted(check_batches(text))
    return (values[0], values[0], values[-1])


@engine_app.command("build")
def build(
    model: Annotated[Path, typer.Argument(
        help="model.fp16.onnx (or any exported .onnx) or an export folder.")],
    batch: Annotated[str, Opt(
        help="Batch sizes the engine serves: the optimisation profile spans the smallest to the "
             "largest, tuned for the smallest. One size (--batch 4) builds a fixed batch, which "
             "--dla needs.")] = "1,8",
    workspace_mb: Annotated[int | None, Opt(
        help="TensorRT workspace limit in MiB (default: TensorRT's).")] = None,
    dla: Annotated[int | None, Opt(
        help="Jetson DLA core to run FP16/INT8 layers on (GPU fallback for the rest). DLA has "
             "no dynamic shapes: give one fixed batch, e.g. --dla 0 --batch 4 (smaller batches "
             "are padded to it).")] = None,
    int8: Annotated[bool, Opt(
        "--int8", help="Build model.int8.onnx (QDQ INT8, strongly typed) of the folder.")] = False,
    out: Annotated[Path | None, Opt(
        help="Engine file (default: model.engine next to the ONNX file).")] = None,
    overwrite: Annotated[bool, Opt(
        help="Replace an existing engine file and its sidecar.")] = False,
) -> None:
    """Build a TensorRT engine (strongly typed) with its JSON sidecar and timing cache."""
    from glcf_runtime.backends.tensorrt.build import BuildOptions
    from glcf_runtime.backends.tensorrt.engines import build_for

    options = BuildOptions(batch=_batches(batch), workspace_mb=workspace_mb, dla_core=dla)
    engine = build_for(model, out, options, int8=int8, overwrite=overwrite, log=_log)
    check_it = shlex.join(["glcf", "engine", "check", str(engine)])
    run_it = shlex.join(["glcf", "inspect", str(engine.parent), "--backend", "tensorrt", "--source", "0"])
    _log(f"next: {check_it}  ·  {run_it}")  # _log escapes the markup


@engine_app.command("check")
def check(
    engine: Annotated[Path, typer.Argument(help="A model.engine (with its .json sidecar).")],
) -> None:
    """Say whether an engine runs on this GPU and TensorRT version (exit 1 when it does not)."""
    from glcf_runtime.backends.tensorrt.engines import check_engine

    match = check_engine(engine)
    _log(f"{engine}: {'fits' if match.ok else 'does not fit'} this device — {match.reason}")
    if not match.ok:
        again = shlex.join(["glcf", "engine", "build", str(engine.parent), "--out", str(engine),
                            "--overwrite"])
        _log(f"rebuild it here: {again}")
        raise typer.Exit(1)
