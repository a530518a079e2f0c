"""Engine building: the no-TensorRT path, options, profile shapes and the sidecar; one real build
where TensorRT and a GPU exist."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from glcf_runtime.backends.tensorrt.build import (
    DLA_NOTE,
    BuildOptions,
    build_engine,
    check_dla,
    make_sidecar,
    profile_shapes,
)
from glcf_runtime.backends.tensorrt.probe import GpuInfo, TensorRTUnavailable, gpu_info
from glcf_runtime.backends.tensorrt.sidecar import sidecar_path
from glcf_runtime.errors import ConfigError
from glcf_runtime.files import file_sha256
from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME, ArtifactMetadata
from tests.glcf_export.test_trt_ops import contract_model

SIZE = 16


def metadata(precision: str = "fp16-mixed") -> ArtifactMetadata:
    return ArtifactMetadata(
        height=SIZE,
        width=SIZE,
        branch_mode="both",
        score_rule="std",
        threshold=1.5,
        threshold_rule="max_good_val",
        map_range=(0.5, 3.0),
        fusion={"weights": [0.5, 0.5]},
        category="breakfast_tray",
        config_hash="abc123",
        preset="tiny",
        precision=precision,
    )


def save_model(folder: Path, precision: str = "fp16-mixed") -> Path:
    model = contract_model(SIZE, fp16=precision != "fp32")
    onnx.helper.set_model_props(model, metadata(precision).to_props())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("model.fp16.onnx" if precision != "fp32" else "model.onnx")
    onnx.save(model, str(path))
    return path


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed"
)
def test_without_tensorrt_nothing_is_touched(tmp_path: Path) -> None:
    onnx_path = save_model(tmp_path / "models")
    (tmp_path / "models" / "cache.bin").write_bytes(b"old cache")
    before = _snapshot(tmp_path)
    messages: list[str] = []
    options = BuildOptions(batch=(1, 2, 4), timing_cache=tmp_path / "models" / "cache.bin")
    with pytest.raises(TensorRTUnavailable) as err:
        build_engine(
            onnx_path,
            tmp_path / "engines" / "model.plan",
            metadata().to_props(),
            options,
            log=messages.append,
        )
    text = str(err.value)
    assert "tensorrt is not installed" in text and "target device" in text
    assert "JetPack" in text and "pip install 'glcf[trt]'" in text and "ONNX Runtime" in text
    assert _snapshot(tmp_path) == before  # the ONNX file, its folder and the cache as they were
    assert not (tmp_path / "engines").exists() and messages == []


@pytest.mark.parametrize("batch", [(0, 1, 1), (2, 1, 4), (1, 4, 2), (1, 2), (1.0, 2, 4)], ids=str)
def test_batch_must_be_ordered(batch: tuple) -> None:
    with pytest.raises(ConfigError, match="batch"):
        BuildOptions(batch=batch)


def test_other_options() -> None:
    assert BuildOptions().batch == (1, 1, 8)
    with pytest.raises(ConfigError, match="workspace_mb"):
        BuildOptions(workspace_mb=0)
    with pytest.raises(ConfigError, match="dla_core"):
        BuildOptions(dla_core=-1)
    check_dla(metadata("fp16-mixed").to_props(), BuildOptions(batch=(1, 1, 1), dla_core=0))
    check_dla(metadata("fp32").to_props(), BuildOptions())
    with pytest.raises(ConfigError, match=r"model\.fp16\.onnx"):
        check_dla(metadata("fp32").to_props(), BuildOptions(batch=(2, 2, 2), dla_core=1))


def test_profile_shapes() -> None:
    shapes = profile_shapes((-1, 224, 224, 3), (1, 2, 8), INPUT_NAME)
    assert shapes == {"min": [1, 224, 224, 3], "opt": [2, 224, 224, 3], "max": [8, 224, 224, 3]}
    assert profile_shapes((4, 224, 224, 3), (4, 4, 4), INPUT_NAME)["max"] == [4, 224, 224, 3]
    with pytest.raises(ConfigError, match="fixed batch of 4"):
        profile_shapes((4, 224, 224, 3), (1, 2, 8), INPUT_NAME)
    with pytest.raises(ConfigError, match="only the batch axis"):
        profile_shapes((-1, -1, 224, 3), (1, 2, 8), INPUT_NAME)


def test_sidecar_content(tmp_path: Path) -> None:
    onnx_path = save_model(tmp_path)
    props = metadata().to_props()
    profile = {INPUT_NAME: profile_shapes((-1, SIZE, SIZE, 3), (1, 2, 4), INPUT_NAME)}
    sidecar = make_sidecar(
        props,
        trt_version="10.3.0",
        gpu=GpuInfo("Orin", "8.7"),
        profile=profile,
        dla={"core": 0, "gpu_fallback": True},
        timing_cache=tmp_path / "cache.bin",
        onnx_path=onnx_path,
        onnx_sha256=file_sha256(onnx_path),
        build_seconds=12.345,
    )
    assert sidecar["onnx_sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert sidecar["onnx_file"] == "model.fp16.onnx" and sidecar["build_seconds"] == 12.35
    assert (sidecar["tensorrt_version"], sidecar["gpu_name"], sidecar["compute_capability"]) == (
        "10.3.0",
        "Orin",
        "8.7",
    )
    assert sidecar["precision"] == "fp16-mixed"
    assert sidecar["profile"][INPUT_NAME]["max"] == [4, SIZE, SIZE, 3]
    assert sidecar["dla"] == {"core": 0, "gpu_fallback": True, "note": DLA_NOTE}
    assert sidecar["timing_cache"] == str(tmp_path / "cache.bin")
    # the runtime reads the contract straight from the sidecar, after a JSON round trip
    back = json.loads(json.dumps(sidecar))
    assert ArtifactMetadata.from_props(back, "model.plan.json") == metadata()
    with pytest.raises(ConfigError, match="profile"):
        make_sidecar(
            {**props, "profile": "x"},
            trt_version="10.3.0",
            gpu=GpuInfo("a", "8.7"),
            profile=profile,
            dla=None,
            timing_cache=None,
            onnx_path=onnx_path,
            onnx_sha256="0",
            build_seconds=1.0,
        )


def test_sidecar_path(tmp_path: Path) -> None:
    assert sidecar_path(tmp_path / "model.plan") == tmp_path / "model.plan.json"


def test_modules_import_without_torch_or_tensorrt() -> None:
    """Deployment boxes have neither torch nor (before the build) tensorrt: import must not need them."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'tensorrt'):\n"
        "            raise ImportError(name + ' is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import glcf_export.trt_ops, glcf_runtime.backends.tensorrt.build, glcf_export.triton\n"
        "assert not {'torch', 'tensorrt'} & set(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_gpu_info_reports_or_refuses() -> None:
    try:
        info = gpu_info()
    except TensorRTUnavailable as err:
        assert "cuda-python" in str(err) or "no CUDA GPU is visible" in str(err)
    else:
        assert info.name and re.fullmatch(r"\d+\.\d+", info.compute_capability)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_build(tmp_path: Path) -> None:
    trt = pytest.importorskip("tensorrt")
    onnx_path = save_model(tmp_path / "models")
    engine_path = tmp_path / "engines" / "model.plan"
    cache = tmp_path / "cache" / "timing.cache"
    options = BuildOptions(batch=(1, 2, 4), workspace_mb=256, timing_cache=cache)
    sidecar = build_engine(onnx_path, engine_path, metadata().to_props(), options, log=print)
    assert engine_path.is_file() and cache.is_file()
    assert json.loads(sidecar_path(engine_path).read_text()) == sidecar
    assert sidecar["tensorrt_version"] == trt.__version__ and sidecar["dla"] is None
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
        engine_path.read_bytes()
    )
    names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
    assert names == {INPUT_NAME, MAP_NAME, SCORE_NAME}
    assert [list(s) for s in engine.get_tensor_profile_shape(INPUT_NAME, 0)] == [
        [1, SIZE, SIZE, 3],
        [2, SIZE, SIZE, 3],
        [4, SIZE, SIZE, 3],
    ]
    build_engine(
        onnx_path, engine_path, metadata().to_props(), options, log=print
    )  # reuses the cache
