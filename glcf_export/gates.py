"""The checks every reduced-precision way of running the graph passes before it is offered: score
Spearman against FP32 on the check images, image AUROC within 0.01 of FP32 for every defect kind
where the run has labelled test images, and the anomaly-map error reported.

Results go to ``gates.json`` in the export folder (``glcf_runtime.backends.auto`` reads it):
``fp16`` (``model.fp16.onnx``, the file TensorRT's engine is built from, on ONNX Runtime:
Spearman ≥ 0.999 and AUROC within 0.002, stricter than the others; a failure fails the export,
which then says to export with ``--no-fp16``), ``int8`` (``model.int8.onnx`` on ONNX Runtime: by
default a failure is recorded and the INT8 file is not published; with ``--int8`` it fails the
export), ``openvino-int8`` and ``openvino-int8-bf16`` and ``openvino-bf16`` (OpenVINO on this CPU:
a failure is recorded, and ``--backend auto`` skips it).

An AUROC tolerance is never tighter than one good–defect pair changing order (1 / (good × defect
images) of that kind): with few labelled images a smaller one would refuse any single swap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from glcf_export.quantize import CalibrationMethod, evenly
from glcf_runtime.artifacts import FP16_FILE, FP32_FILE, GATES_FILE, INT8_FILE, RUN_MODES, Backend
from glcf_runtime.backends.base import Runner
from glcf_runtime.compare import infer_all, spearman
from glcf_runtime.errors import GlcfError
from glcf_runtime.metadata import ArtifactMetadata
from glcf_runtime.preprocess import PreprocessSpec
from glcf_runtime.requires import MissingPackage, installed

SPEARMAN_MIN = 0.99  # reduced precision vs FP32, scores of the check images
AUROC_TOLERANCE = 0.01  # |AUROC change| per defect kind
FP16_GATE = RUN_MODES["tensorrt"].gate  # the mixed FP16 file's entry in gates.json
FP16_AUROC_TOLERANCE = 0.002  # FP16 keeps the verdicts: |AUROC change| per defect kind
MAX_LABELLED = 96  # labelled test images scored per gate, spread over the kinds
NO_NATIVE_BF16 = "the CPU the export ran on has no native BF16"  # a BF16 gate's reason


@dataclass(frozen=True)
class CheckSet:
    """Frames the gates score: ``images`` (Spearman, map error) and labelled test frames."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    labelled: np.ndarray  # uint8 [M, H, W, 3], M may be 0
    kinds: tuple[str, ...] = ()  # per labelled frame: "good" or the defect kind


@dataclass
class Reference:
    """FP32 outputs on a check set (ONNX Runtime on ``model.onnx``)."""

    maps: np.ndarray
    scores: np.ndarray
    labelled_scores: np.ndarray


@dataclass
class GateResult:
    name: str
    passed: bool
    figures: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    reason: str = ""  # why it failed or did not run, in a few words

    def to_dict(self) -> dict:
        return asdict(self)


def labelled_test_images(root: Path, category: str | None, size: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Up to ``MAX_LABELLED`` test images of the run's data set and their kinds (none: empty)."""
    from glcf_train.data.datasets import load_images, read_split

    try:
        samples = read_split(root, category, "test")
    except GlcfError:
        samples = []
    samples = evenly(samples, MAX_LABELLED)
    if not samples:
        return np.zeros((0, size, size, 3), np.uint8), ()
    images = load_images(samples, PreprocessSpec(size, size))
    return images, tuple("good" if s.label == 0 else s.kind for s in samples)


def reference(runner: Runner, checks: CheckSet, batch: int) -> Reference:
    """``runner``'s (the FP32 file's) outputs on the check set."""
    scores, maps = infer_all(runner, checks.images, batch)
    return Reference(maps, scores, infer_all(runner, checks.labelled, batch).scores)


def auroc_by_kind(scores: np.ndarray, kinds: tuple[str, ...]) -> dict[str, float]:
    """Image AUROC of each defect kind against the good images."""
    from calibration.metrics import image_auroc

    kinds_arr = np.array(kinds)
    good = scores[kinds_arr == "good"]
    out = {}
    for kind in sorted(set(kinds) - {"good"}):
        bad = scores[kinds_arr == kind]
        if len(good) and len(bad):
            labels = np.r_[np.zeros(len(good)), np.ones(len(bad))]
            out[kind] = image_auroc(np.r_[good, bad], labels)
    return out


def allowed_change(tolerance: float, kinds: tuple[str, ...], kind: str) -> float:
    """The AUROC change allowed for ``kind``: ``tolerance``, or one good–defect pair changing
    order where that is larger (few labelled images)."""
    good, bad = kinds.count("good"), kinds.count(kind)
    return max(tolerance, 1.0 / (good * bad)) if good and bad else tolerance


def run_gate(name: str, runner: Runner, ref: Reference, checks: CheckSet, batch: int,
             spearman_min: float | None = None, auroc_tolerance: float | None = None) -> GateResult:
    """Score the check set with ``runner`` and compare with the FP32 reference (limits: the
    module's ``SPEARMAN_MIN`` and ``AUROC_TOLERANCE`` unless given)."""
    spearman_min = SPEARMAN_MIN if spearman_min is None else spearman_min
    auroc_tolerance = AUROC_TOLERANCE if auroc_tolerance is None else auroc_tolerance
    scores, maps = infer_all(runner, checks.images, batch)
    result = GateResult(name, True)
    span = float(ref.maps.max() - ref.maps.min()) or 1.0
    rho = spearman(ref.scores, scores)
    result.figures.update(spearman=rho, map_err_rel_range=float(np.abs(maps - ref.maps).max()) / span)
    if not (np.isfinite(maps).all() and np.isfinite(scores).all()):
        result.failures.append(f"{name}: the outputs hold NaN/inf")
    if not rho >= spearman_min:
        result.failures.append(f"{name}: Spearman of scores vs FP32 {rho:.4f} < {spearman_min}")
    if len(checks.labelled):
        labelled = infer_all(runner, checks.labelled, batch).scores
        before, after = auroc_by_kind(ref.labelled_scores, checks.kinds), auroc_by_kind(labelled, checks.kinds)
        for kind, value in before.items():
            change = after[kind] - value
            result.figures[f"auroc_{kind}_fp32"] = value
            result.figures[f"auroc_{kind}_change"] = change
            allowed = allowed_change(auroc_tolerance, checks.kinds, kind)
            if abs(change) > allowed + 1e-12:  # an exact one-pair change is allowed
                result.failures.append(f"{name}: image AUROC of {kind} anomalies {after[kind]:.4f} vs "
                                       f"FP32 {value:.4f} (change {change:+.4f}, allowed ±{allowed:.4g})")
    result.passed = not result.failures
    result.reason = "; ".join(result.failures)
    return result


def openvino_gates(folder: Path, ref: Reference, checks: CheckSet, batch: int,
                   int8: bool) -> list[GateResult]:
    """OpenVINO on this CPU: the gated run modes (``glcf_runtime.artifacts.RUN_MODES``): BF16 on
    ``model.onnx``, and, with ``int8`` (the file was written), the INT8 file with its float parts
    in FP32 and in BF16."""
    from glcf_runtime.backends.openvino import OpenVinoRunner, native_bf16

    wanted = [(mode.gate, mode.file, mode.precision.value) for mode in RUN_MODES.values()
              if mode.backend is Backend.OPENVINO and mode.gate is not None
              and (int8 or mode.file != INT8_FILE)]
    if not installed("openvino"):
        missing = MissingPackage("openvino", "openvino", "checking OpenVINO where the export ran")
        return [GateResult(n, False, reason=str(missing)) for n, _, _ in wanted]
    results = []
    for name, file, precision in wanted:
        if precision == "bf16" and not native_bf16():
            results.append(GateResult(name, False, reason=NO_NATIVE_BF16))
            continue
        with OpenVinoRunner(folder / file, precision=precision, cache=False) as runner:
            results.append(run_gate(name, runner, ref, checks, batch))
    return results


def reduced_precision(folder: Path, fp32: Runner, checks: CheckSet, batch: int,
                      int8: tuple[np.ndarray, ArtifactMetadata, CalibrationMethod] | None,
                      log: Callable[[str], None] = print,
                      required: bool = True) -> tuple[dict[str, dict], list[str]]:
    """Gate the mixed FP16 file (where ``folder`` has one), make ``model.int8.onnx`` (when
    ``int8`` = calibration frames, metadata, method is given) in ``folder``, and gate every
    reduced-precision way of running the graph against ``fp32`` (the runner of ``model.onnx``).
    An INT8 file that fails its gate is removed from ``folder`` unless ``required`` (``--int8``):
    then its failures fail the export, as the FP16 file's always do.

    Returns:
        ``gates.json``'s content, and the failures that must fail the export (the FP16 file's;
        the INT8 file's where it is ``required``).
    """
    ref = reference(fp32, checks, batch)
    gates: list[GateResult] = []
    if (folder / FP16_FILE).is_file():
        gate = _fp16_gate(folder, ref, checks, batch, log)
        gates.append(gate)
        if gate.failures:
            return {g.name: g.to_dict() for g in gates}, gate.failures
    made = False
    if int8 is not None:
        gate = _int8_gate(folder, ref, checks, batch, int8, log, required)
        gates.append(gate)
        if gate.failures and required:
            return {g.name: g.to_dict() for g in gates}, gate.failures
        made = gate.passed
        if not made:
            (folder / INT8_FILE).unlink(missing_ok=True)
            log(f"{INT8_FILE} was not written: its check against FP32 failed "
                f"({_unnamed(gate.name, gate.reason)}); --backend auto uses the float files")
    log(f"checking OpenVINO ({'BF16, INT8' if made else 'BF16'}) against FP32 …")
    gates += openvino_gates(folder, ref, checks, batch, made)
    return {g.name: g.to_dict() for g in gates}, []


def _fp16_gate(folder: Path, ref: Reference, checks: CheckSet, batch: int,
               log: Callable[[str], None]) -> GateResult:
    """The mixed FP16 file on ONNX Runtime against FP32, with FP16's stricter limits."""
    from glcf_export.checks import SPEARMAN_MIN as FP16_SPEARMAN_MIN
    from glcf_export.checks import check_runner

    log("checking the mixed FP16 file's verdicts (AUROC per defect kind) against FP32 …")
    with check_runner(folder / FP16_FILE) as runner:
        return run_gate(FP16_GATE, runner, ref, checks, batch, FP16_SPEARMAN_MIN, FP16_AUROC_TOLERANCE)


def _int8_gate(folder: Path, ref: Reference, checks: CheckSet, batch: int,
               int8: tuple[np.ndarray, ArtifactMetadata, CalibrationMethod],
               log: Callable[[str], None], required: bool) -> GateResult:
    """Quantize ``model.int8.onnx`` and gate it on ONNX Runtime (its operators checked too). A
    graph the quantizer refuses fails the export where INT8 is ``required``, else fails the gate."""
    from glcf_export.checks import CheckReport, check_ops, check_runner
    from glcf_export.onnx_export import ExportError
    from glcf_export.quantize import quantize_int8

    frames, meta, method = int8
    name = RUN_MODES["onnxruntime-int8"].gate
    log(f"quantizing to INT8 (static QDQ, calibrated on {len(frames)} good training images) …")
    try:
        model = quantize_int8(folder / FP32_FILE, folder / INT8_FILE, frames, meta, method)
    except ExportError as exc:
        if required:
            raise
        return GateResult(name, False, {"calibration_images": len(frames)}, [str(exc)], str(exc))
    log("checking INT8 against FP32 …")
    with check_runner(folder / INT8_FILE) as runner:
        gate = run_gate(name, runner, ref, checks, batch)
    ops = CheckReport()
    check_ops(ops, INT8_FILE, model)
    gate.failures += ops.failures
    gate.passed, gate.reason = not gate.failures, "; ".join(gate.failures)
    gate.figures["calibration_images"] = len(frames)
    return gate


def _unnamed(name: str, reason: str) -> str:
    """A gate's reason without the gate's name in front of each failure (the line names it)."""
    return "; ".join(part.removeprefix(f"{name}: ") for part in reason.split("; "))


def gate_lines(gates: dict[str, dict]) -> list[str]:
    """One line per ``gates.json`` entry: its name, whether it passed, and its figures (Spearman,
    map error share of range, AUROC change) or why it failed."""
    from glcf_runtime.backends.auto import gate_figures

    lines = []
    for name, entry in gates.items():
        figures = entry.get("figures") or {}
        if entry.get("passed"):
            lines.append(f"{name}: passed ({gate_figures(figures)})")
        elif entry.get("reason") == NO_NATIVE_BF16:
            lines.append(f"{name}: not checked, {NO_NATIVE_BF16}: --backend auto runs OpenVINO in "
                         "FP32 (or INT8 where its gate passed) on such a CPU")
        else:
            measured = f" ({gate_figures(figures)})" if "spearman" in figures else ""
            reason = _unnamed(name, str(entry.get("reason") or ""))
            lines.append(f"{name}: failed: {reason or 'see ' + GATES_FILE}{measured}")
    return lines


def gate_inputs(root: Path, category: str | None, size: int, check_images: np.ndarray,
                calib_images: int | None, calib_dir: Path | None = None, required: bool = True,
                log: Callable[[str], None] = print) -> tuple[CheckSet, np.ndarray | None]:
    """The gates' check set, and the INT8 calibration frames (None: no INT8 file is made):
    ``calib_images`` good training images of the run spread evenly, or the images of ``calib_dir``.
    Where INT8 is not ``required`` (the default export) and the run's data has no training images
    at hand, ``log`` says so and no INT8 file is made.

    Raises:
        ExportError: ``calib_dir`` holds no images.
        DataError: INT8 is ``required`` and the run's training folder is missing or empty.
    """
    from glcf_export.onnx_export import ExportError
    from glcf_runtime.preprocess import list_images
    from glcf_train.data.datasets import load_images, read_split

    labelled, kinds = labelled_test_images(root, category, size)
    checks = CheckSet(check_images, labelled, kinds)
    if calib_images is None:
        return checks, None
    spec = PreprocessSpec(size, size)
    if calib_dir is not None:
        paths = list_images(Path(calib_dir)) if Path(calib_dir).is_dir() else []
        if not paths:
            raise ExportError(f"--calib-dir {calib_dir} holds no images; give a folder of good images")
        return checks, load_images(evenly(paths, calib_images), spec)
    try:
        train = read_split(root, category, "train")
    except GlcfError as exc:
        if required:
            raise
        why = str(exc)
    else:
        if train or required:  # none with --int8: quantize_int8 says so
            return checks, load_images(evenly(train, calib_images), spec)
        why = "the training split is empty"
    where = Path(root) / (category or "")
    log(f"skipping {INT8_FILE}: no training images of {where} to calibrate it on ({why}); "
        "give good images with --calib-dir to make it")
    return checks, None
