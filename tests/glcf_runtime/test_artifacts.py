"""The export folder's one table (``glcf_runtime.artifacts``): every run mode's file is one a real
export writes, and glcf bench's names and glcf inspect's --backend / --precision land on the same
row, old spellings included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_model
from glcf_bench.settings import parse_backends
from glcf_cli.bench_commands import ALL_BACKENDS
from glcf_runtime.artifacts import (
    ENGINE_FILE,
    EXPORT_REPORT,
    FP16_FILE,
    FP32_FILE,
    GATES_FILE,
    INT8_ENGINE_FILE,
    INT8_FILE,
    MODE_NAMES,
    RUN_MODES,
    Backend,
    run_mode_of,
)
from glcf_runtime.backends import choose_backend, open_runner, resolve_artifact
from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import BranchMode, ScoreRule, read_metadata, read_onnx_props

# glcf bench --backends as it was spelt before the table: every name must keep working.
OLD_BENCH_NAMES = ("torch,onnxruntime,onnxruntime-fp16,tensorrt,openvino,openvino-bf16,openvino-int8,"
                   "openvino-int8-bf16,onnxruntime-int8,tensorrt-int8")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An export folder of the contract model under every ONNX name (the rows read files)."""
    for name in (FP32_FILE, FP16_FILE, INT8_FILE):
        write_model(tmp_path / "export", name=name)
    return tmp_path / "export"


@pytest.mark.slow
def test_every_run_mode_names_a_file_and_a_gate_of_a_real_export(
        calibrated_run: Path, tmp_path: Path) -> None:
    from glcf_export.export import ExportOptions, export_run

    out = tmp_path / "models"
    export_run(calibrated_run, ExportOptions(out, batch=2, int8=True), log=lambda _: None)
    precision = {FP32_FILE: "fp32", FP16_FILE: "fp16-mixed", INT8_FILE: "int8-qdq"}
    for name, mode in RUN_MODES.items():
        assert (out / mode.file).is_file(), name
        assert read_metadata(out / mode.file).precision == precision[mode.file], name
    gates = json.loads((out / GATES_FILE).read_text())  # every gate is recorded, passed or not
    assert set(gates) == {m.gate for m in RUN_MODES.values() if m.gate is not None}
    assert (out / EXPORT_REPORT).is_file() and not (out / ENGINE_FILE).exists()


def test_bench_and_inspect_spellings_choose_the_same_row(folder: Path) -> None:
    assert list(parse_backends(ALL_BACKENDS)) == ["torch", *RUN_MODES]
    for engine in (ENGINE_FILE, INT8_ENGINE_FILE):  # chosen, not opened
        (folder / engine).write_bytes(b"engine")
    for name, mode in RUN_MODES.items():
        bench = choose_backend(folder, name)  # inspect --backend NAME, as glcf bench spells it
        precision = {"precision": mode.precision.value} if mode.backend is Backend.OPENVINO else {}
        if mode.backend is Backend.TENSORRT:  # inspect --backend tensorrt on the engine file
            inspect = choose_backend(folder / mode.runs, Backend.TENSORRT)
            assert (bench.path, bench.backend) == (folder, Backend.TENSORRT)
        else:  # inspect FILE --backend BACKEND [--precision P]
            inspect = choose_backend(folder / mode.file, mode.backend.value, **precision)
            assert (bench.path, bench.backend) == (inspect.path, mode.backend) == (
                folder / mode.file, inspect.backend)
            assert bench.options == (precision if name in MODE_NAMES else {})
        assert bench.mode == inspect.mode == name
        assert run_mode_of(mode.backend, mode.runs, mode.precision) == name


def test_both_spellings_open_the_same_runner(folder: Path) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from glcf_runtime.backends.openvino import native_bf16

    names = ["onnxruntime-fp16", "onnxruntime-int8", "openvino-int8"]
    names += ["openvino-bf16", "openvino-int8-bf16"] if native_bf16() else []
    for name in names:
        mode = RUN_MODES[name]
        options = {"precision": mode.precision.value} if mode.backend is Backend.OPENVINO else {}
        with open_runner(folder, name, threads=1) as a, \
                open_runner(folder / mode.file, mode.backend, threads=1, **options) as b:
            assert (type(a), a.path, a.describe()) == (type(b), b.path, b.describe()), name
            assert a.path == folder / mode.file
    assert resolve_artifact(folder, "openvino-int8") == (folder / INT8_FILE, Backend.OPENVINO)


def test_old_spellings_and_wrong_ones(folder: Path) -> None:
    assert ALL_BACKENDS == OLD_BENCH_NAMES
    assert list(parse_backends(OLD_BENCH_NAMES)) == OLD_BENCH_NAMES.split(",")
    for backend in ("onnxruntime", "openvino"):  # glcf inspect's own names keep their meaning
        choice = choose_backend(folder, backend)
        assert (choice.path.name, choice.reason) == (FP32_FILE, f"asked for (--backend {backend})")
        assert choice.mode == backend
    with pytest.raises(ConfigError, match=r"choose onnxruntime, tensorrt, openvino, auto, or a run "
                                          r"mode of an export folder: onnxruntime-fp16, "):
        choose_backend(folder, "openvino-fp4")
    with pytest.raises(ConfigError, match=r"--backend openvino-bf16 runs in bf16; drop --precision"):
        open_runner(folder, "openvino-bf16", precision="fp32")
    with pytest.raises(ConfigError, match=r"model\.onnx is not model\.int8\.onnx, which --backend "
                                          r"openvino-int8 runs"):
        choose_backend(folder / FP32_FILE, "openvino-int8")
    (folder / INT8_FILE).unlink()
    with pytest.raises(ConfigError, match=r"holds no model\.int8\.onnx, which --backend "
                                          r"onnxruntime-int8 runs; export it with .* --int8"):
        choose_backend(folder, "onnxruntime-int8")


def test_the_typed_metadata_keeps_its_strings(folder: Path) -> None:
    from glcf_train.config import BranchMode as TrainBranchMode
    from glcf_train.config import ScoreRule as TrainScoreRule

    meta = read_metadata(folder / FP32_FILE)
    assert meta.branch_mode is BranchMode.BOTH and meta.score_rule is ScoreRule.MAX
    assert meta.to_props() == read_onnx_props(folder / FP32_FILE)  # the same strings as on disk
    assert TrainBranchMode is BranchMode and TrainScoreRule is ScoreRule
