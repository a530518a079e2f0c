"""``--backend auto``: the fastest backend and precision this box has, the export folder holds and
the export's checks passed (``gates.json``, written by ``glcf export``).

Order: TensorRT where tensorrt and an NVIDIA GPU are present (the engine is built on first use),
else OpenVINO on the CPU — ``model.int8.onnx`` when its gates passed (its float parts in BF16 where
the CPU has native BF16 and that gate passed too), else ``model.onnx`` in BF16 where the CPU has
native BF16 and the BF16 gates passed, else ``model.onnx`` in FP32 — else ONNX
Runtime: ``model.int8.onnx`` when its gates passed (the ONNX Runtime INT8 gate is the export's own
check), else ``model.onnx``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glcf_runtime.artifacts import (
    ENGINE_FILE,
    FP16_FILE,
    FP32_FILE,
    GATES_FILE,
    INT8_FILE,
    RUN_MODES,
    Backend,
)
from glcf_runtime.backends.tensorrt.probe import tensorrt_here
from glcf_runtime.compare import read_gates
from glcf_runtime.errors import ConfigError
from glcf_runtime.requires import install_hint


@dataclass(frozen=True)
class BackendChoice:
    """What ``auto`` (or ``--backend``) picked: the file, the backend, its options, why, and the
    run mode (``glcf_runtime.artifacts.RUN_MODES``) where the choice is one."""

    path: Path
    backend: Backend
    reason: str
    options: dict[str, Any] = field(default_factory=dict)
    mode: str | None = None

    def describe(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.options.items())
        return f"{self.backend.value} on {self.path.name}{extra}: {self.reason}"


def mode_choice(folder: Path, name: str, reason: str) -> BackendChoice:
    """Run mode ``name`` on an export folder: its file (TensorRT: the folder, whose engine is
    found or built on first use) and, for OpenVINO, its precision."""
    mode = RUN_MODES[name]
    if mode.backend is Backend.TENSORRT:
        return BackendChoice(folder, mode.backend, reason, mode=name)
    options = {"precision": mode.precision.value} if mode.backend is Backend.OPENVINO else {}
    return BackendChoice(folder / mode.file, mode.backend, reason, options, name)


def gate_figures(figures: dict[str, float]) -> str:
    """A gate's figures in a few words: Spearman of the scores vs FP32, then, where recorded, the
    anomaly map's largest error (share of the FP32 map's range) and the largest AUROC change."""
    words = [f"Spearman {figures.get('spearman', float('nan')):.4f} vs FP32"]
    if "map_err_rel_range" in figures:
        words.append(f"map error {figures['map_err_rel_range']:.2%} of its range")
    changes = [v for k, v in figures.items() if k.startswith("auroc_") and k.endswith("_change")]
    if changes:
        words.append(f"AUROC change {max(changes, key=abs):+.4f}")
    return ", ".join(words)


def gate(gates: dict[str, dict], key: str) -> tuple[bool, str]:
    """Whether gate ``key`` passed, and a few words on it."""
    entry = gates.get(key)
    if not isinstance(entry, dict):
        return False, f"no {key} check recorded in {GATES_FILE}"
    if entry.get("passed") is True:
        return True, f"{key} passed its checks ({gate_figures(entry.get('figures', {}))})"
    return False, f"{key} did not pass its checks: {entry.get('reason', 'see ' + GATES_FILE)}"


def choose_for_folder(folder: Path, tensorrt: tuple[bool, str] | None = None) -> BackendChoice:
    """The best backend for an export folder (see the module docstring).

    Raises:
        ConfigError: the folder holds neither an engine nor ``model.onnx``.
    """
    from glcf_runtime.backends.openvino import native_bf16, openvino_available

    folder = Path(folder)
    trt_ok, trt_why = tensorrt if tensorrt is not None else tensorrt_here()
    if trt_ok and ((folder / ENGINE_FILE).is_file() or (folder / FP16_FILE).is_file()):
        return mode_choice(folder, "tensorrt", f"{trt_why} (engine built on first use)")
    if not (folder / FP32_FILE).is_file():
        raise ConfigError(f"{folder} holds no {FP32_FILE}; give a folder written by glcf export")
    gates = read_gates(folder)
    has_int8 = (folder / INT8_FILE).is_file()
    if not openvino_available():
        why = f"{trt_why}; openvino is not installed ({install_hint('openvino')})"
        int8_ok, int8_why = gate(gates, RUN_MODES["onnxruntime-int8"].gate)
        if has_int8 and int8_ok:
            return mode_choice(folder, "onnxruntime-int8", f"{why}; {int8_why}")
        return mode_choice(folder, "onnxruntime", why)
    bf16_here = native_bf16()
    mixed_ok, mixed_why = gate(gates, RUN_MODES["openvino-int8-bf16"].gate)
    if has_int8 and bf16_here and mixed_ok:  # INT8 MatMuls, the float rest in BF16: the fastest
        return mode_choice(folder, "openvino-int8-bf16", f"{trt_why}; {mixed_why}")
    int8_ok, int8_why = gate(gates, RUN_MODES["openvino-int8"].gate)
    if has_int8 and int8_ok:
        return mode_choice(folder, "openvino-int8", f"{trt_why}; {int8_why}")
    reasons = [trt_why, int8_why if has_int8 else f"no {INT8_FILE}"]
    if bf16_here:
        bf16_ok, bf16_why = gate(gates, RUN_MODES["openvino-bf16"].gate)
        if bf16_ok:
            return mode_choice(folder, "openvino-bf16", "; ".join([*reasons, bf16_why]))
        reasons.append(bf16_why)
    else:
        reasons.append("this CPU has no native BF16")
    return mode_choice(folder, "openvino", "; ".join(reasons))


def choose_for_file(path: Path) -> BackendChoice:
    """A named model file runs as it is: an engine on TensorRT, an ONNX file on OpenVINO (FP32)
    where openvino is installed, else on ONNX Runtime."""
    from glcf_runtime.artifacts import run_mode_of
    from glcf_runtime.backends.openvino import openvino_available

    if path.suffix.lower() in (".engine", ".plan"):
        return BackendChoice(path, Backend.TENSORRT, "a TensorRT engine",
                             mode=run_mode_of(Backend.TENSORRT, path.name))
    if openvino_available():
        return BackendChoice(path, Backend.OPENVINO, "an ONNX file; openvino is installed",
                             {"precision": "fp32"}, run_mode_of(Backend.OPENVINO, path.name))
    return BackendChoice(path, Backend.ONNXRUNTIME, "openvino is not installed; ONNX Runtime runs "
                         "any ONNX file", mode=run_mode_of(Backend.ONNXRUNTIME, path.name))
