"""`glcf export` (needs the `export` extra: torch, onnx, onnxslim, onnxruntime)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from glcf_cli.common import console, err_console, log_line, shell

Opt = typer.Option


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    run: Annotated[Path, typer.Argument(help="Calibrated run folder.")],
    out: Annotated[Path, Opt("--out", help="Folder for model.onnx, model.fp16.onnx (and model.engine).")],
    batch: Annotated[int, Opt(help="Largest batch to check and to build the TensorRT profile for.")] = 8,
    no_fp16: Annotated[bool, Opt("--no-fp16", help="Skip the mixed-precision FP16 file.")] = False,
    overwrite: Annotated[bool, Opt(help="Replace models already in --out.")] = False,
    branch_mode: Annotated[str | None, Opt(help="both, local (drops Φ_G, Ψ_G) or global (drops Ψ_L).")] = None,
    trt: Annotated[bool, Opt("--trt", help="Also build a TensorRT engine (on the target GPU).")] = False,
    workspace_mb: Annotated[int | None, Opt(help="TensorRT builder workspace limit in MiB.")] = None,
    dla: Annotated[int | None, Opt(help="Jetson DLA core for the engine (GPU fallback), with --trt. DLA "
                                   "runs one fixed batch: give --batch 1 here; for a larger one, "
                                   "export without --trt, then glcf engine build OUT --dla N "
                                   "--batch 4.")] = None,
    triton: Annotated[Path | None, Opt(help="Also write a Triton model repository here.")] = None,
    triton_device: Annotated[str, Opt(
        help="gpu or cpu: where Triton runs the model (cpu serves model.onnx on ONNX Runtime).")] = "gpu",
    int8: Annotated[bool | None, Opt("--int8/--no-int8", help="model.int8.onnx (static QDQ INT8 for "
                                     "OpenVINO and TensorRT), checked against FP32 (Spearman, AUROC). "
                                     "Default: made, and left out (the export goes on) if its check "
                                     "fails; --int8: a failed check fails the export; --no-int8: "
                                     "not made.", show_default=False)] = None,
    calib_images: Annotated[int, Opt(help="Good images the INT8 ranges are calibrated on (spread "
                                     "over the run's training images; fewer there: all).")] = 256,
    calib_dir: Annotated[Path | None, Opt(help="Calibrate INT8 on this folder of good images "
                                          "instead of the run's training images.")] = None,
) -> None:
    """Fold the detector and its scoring into one ONNX graph (FP32 + mixed FP16), checked on real images."""
    from glcf_cli.eval_commands import parse_branch_mode
    from glcf_cli.preflight import check_batch
    from glcf_runtime.artifacts import ENGINE_FILE, FP32_FILE

    check_batch(batch, "--batch")  # before torch loads
    _check_dla(dla, trt, batch, out)
    from glcf_export.export import ExportOptions, export_run
    from glcf_export.gates import gate_lines

    opts = ExportOptions(out, batch, not no_fp16, overwrite, parse_branch_mode(branch_mode), trt,
                         workspace_mb, dla, triton, triton_device, int8=int8,
                         calib_images=calib_images, calib_dir=calib_dir)
    try:
        result = export_run(run, opts, log=log_line)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (export_run turns it into this)
        how = " ".join(["interrupted", *map(str, exc.args)])
        err_console.print(f"export {how}; run it again to finish it", highlight=False)
        raise typer.Exit(130) from None  # as glcf train, stopped by a signal
    for name, size in result.files.items():
        console.print(f"  {out / name}  {size / 1e6:.1f} MB")
    for key, value in result.checks.figures.items():
        console.print(f"  {key:32s} {value:.3g}")
    console.print(f"  operators ({len(result.checks.ops[FP32_FILE])}, all parsed by TensorRT 10): "
                  + ", ".join(result.checks.ops[FP32_FILE]))
    console.print("  checks of the reduced-precision runs (gates.json):")
    for line in gate_lines(result.gates):
        console.print(f"    {line}", highlight=False)
    console.print(f"exported in {result.seconds:.0f} s")
    if triton is not None:
        console.print(f"Triton model repository: {triton}/glcf")
    model = str(out / (ENGINE_FILE if trt else FP32_FILE))
    for lead, command, note in (
        ("next:", ["inspect", model, "--source", "VIDEO_OR_FOLDER_OR_CAMERA", "--jsonl",
                   "results.jsonl"], ""),
        ("     ", ["threshold", model, "--good", "GOOD_IMAGES"], "   (re-calibrate on this backend)"),
        ("     ", ["bench", str(run), "--batch", "1,8"], "   (latency of every backend side by side)"),
    ):
        console.print(f"{lead} {shell(['glcf', *command])}{note}", highlight=False)


def _check_dla(dla: int | None, trt: bool, batch: int, out: Path) -> None:
    """Refuse a DLA engine that cannot be built, before any work: DLA has no dynamic shapes, and
    the export builds its engine for batches 1 to ``--batch``, a range unless that is 1.

    Raises:
        ConfigError: ``--dla`` without ``--trt``, or with ``--batch`` above 1.
    """
    if dla is None:
        return
    from glcf_runtime.backends.tensorrt.build import BuildOptions
    from glcf_runtime.errors import ConfigError

    if not trt:
        raise ConfigError(f"--dla needs --trt: --dla {dla} chooses the DLA core of the TensorRT "
                          "engine that --trt builds")
    if batch != 1:
        later = shlex.join(["glcf", "engine", "build", str(out), "--dla", str(dla), "--batch",
                            str(batch)])
        raise ConfigError(
            f"--dla {dla} with --batch {batch}: DLA has no dynamic shapes and runs one fixed "
            f"batch, while the export builds its engine for batches 1 to {batch}. Give --batch 1 "
            f"for a DLA engine of batch 1, or export without --trt and --dla, then build the DLA "
            f"engine for one fixed batch of {batch}: {later}")
    BuildOptions(batch=(1, 1, batch), dla_core=dla)  # the engine's other DLA checks, now
