"""Engines next to their model: the file built from, the device check, build on first use.

Building needs TensorRT and a GPU (the tests marked ``tensorrt``); everything around it runs here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_model
from glcf_runtime.backends import open_runner
from glcf_runtime.backends.tensorrt.build import BuildOptions
from glcf_runtime.backends.tensorrt.engines import (
    build_for,
    check_engine,
    device_tag,
    engine_for_folder,
    engine_matches,
    onnx_source,
)
from glcf_runtime.backends.tensorrt.probe import GpuInfo, TensorRTUnavailable
from glcf_runtime.backends.tensorrt.sidecar import sidecar_path
from glcf_runtime.errors import ConfigError
from glcf_runtime.files import atomic_write_json
from glcf_runtime.metadata import read_onnx_props

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    write_model(folder)
    (folder / "model.fp16.onnx").write_bytes((folder / "model.onnx").read_bytes())
    return folder


def test_the_source_is_the_mixed_file_or_the_file_given(export_dir: Path) -> None:
    assert onnx_source(export_dir) == export_dir / "model.fp16.onnx"
    assert onnx_source(export_dir / "model.onnx") == export_dir / "model.onnx"
    with pytest.raises(ConfigError, match=r"holds no model\.int8\.onnx.*--int8"):
        onnx_source(export_dir, int8=True)
    (export_dir / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not an ONNX file"):
        onnx_source(export_dir / "notes.txt")
    with pytest.raises(ConfigError, match="no model at"):
        onnx_source(export_dir / "missing")


def test_props_are_read_without_a_session(export_dir: Path, tmp_path: Path) -> None:
    props = read_onnx_props(export_dir / "model.onnx")
    assert props["category"] == "test" and "format_version" in props
    (tmp_path / "broken.onnx").write_bytes(b"\x00not a model")
    with pytest.raises(ConfigError, match="not a readable ONNX model"):
        read_onnx_props(tmp_path / "broken.onnx")


def test_an_engine_matches_only_its_own_device(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine")
    atomic_write_json(sidecar_path(engine), {"tensorrt_version": "10.3.0", "gpu_name": H100.name,
                                             "compute_capability": "9.0"})
    assert engine_matches(engine, "10.3.0", H100).ok
    orin = engine_matches(engine, "10.3.0", GpuInfo("Orin", "8.7"))
    assert not orin.ok and "H100" in orin.reason and "Orin" in orin.reason
    assert not engine_matches(engine, "10.7.0", H100).ok
    sidecar_path(engine).unlink()
    assert "no sidecar" in engine_matches(engine, "10.3.0", H100).reason
    assert device_tag("10.3.0", H100) == "nvidia-h100-80gb-hbm3-sm9.0-trt10.3.0"


def test_build_never_replaces_an_engine_unasked(export_dir: Path) -> None:
    (export_dir / "model.engine").write_bytes(b"someone's engine")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        build_for(export_dir, None, BuildOptions())
    assert (export_dir / "model.engine").read_bytes() == b"someone's engine"


@pytest.mark.skipif(HAS_TRT, reason="checks the path taken where TensorRT is missing")
def test_without_tensorrt_every_engine_path_says_what_to_install(export_dir: Path) -> None:
    for call in (lambda: engine_for_folder(export_dir, print),
                 lambda: build_for(export_dir, export_dir / "new.engine", BuildOptions()),
                 lambda: open_runner(export_dir, "tensorrt")):
        with pytest.raises(TensorRTUnavailable, match="tensorrt is not installed"):
            call()
    (export_dir / "x.engine").write_bytes(b"e")
    with pytest.raises(TensorRTUnavailable):
        check_engine(export_dir / "x.engine")
    assert sorted(p.name for p in export_dir.iterdir()) == ["model.fp16.onnx", "model.onnx",
                                                            "x.engine"]


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_first_use_builds_beside_the_model_then_reuses_it(export_dir: Path) -> None:
    lines: list[str] = []
    foreign = export_dir / "model.engine"
    foreign.write_bytes(b"built elsewhere")
    atomic_write_json(sidecar_path(foreign), {"tensorrt_version": "0", "gpu_name": "other",
                                              "compute_capability": "0.0"})
    engine = engine_for_folder(export_dir, lines.append)
    assert engine.name.startswith("model.engine.") and engine.is_file()
    assert foreign.read_bytes() == b"built elsewhere"  # never replaced
    assert any("building a TensorRT engine" in line for line in lines)
    lines.clear()
    assert engine_for_folder(export_dir, lines.append) == engine
    assert not any("building" in line for line in lines)
    assert check_engine(engine).ok
    with open_runner(export_dir, "tensorrt") as runner:
        assert runner.path == engine
