"""Triton model repository for the small contract-shaped model, read back with Triton's own
``model_config.proto`` schema (tritonclient) through protobuf's text format."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from onnx import TensorProto
from tritonclient.grpc import model_config_pb2

from glcf_export.triton import write_triton_repository
from glcf_runtime.backends.tensorrt.build import make_sidecar, profile_shapes
from glcf_runtime.backends.tensorrt.probe import GpuInfo
from glcf_runtime.backends.tensorrt.sidecar import sidecar_path
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.files import atomic_write_json
from glcf_runtime.metadata import INPUT_NAME, SCORE_NAME
from tests.glcf_export.test_trt_ops import contract_model

SIZE = 16
EXPECTED_TYPES = {TensorProto.UINT8: "TYPE_UINT8", TensorProto.FLOAT: "TYPE_FP32"}


def dtype(config_value: int) -> str:
    return model_config_pb2.DataType.Name(config_value)


def parse_pbtxt(text: str) -> Any:
    """``config.pbtxt`` parsed with Triton's own schema (tritonclient's ``ModelConfig``); an
    unknown field, a wrong type or bad syntax raises ``text_format.ParseError``."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture
def onnx_path(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "model.onnx"
    path.parent.mkdir()
    onnx.save(contract_model(SIZE), str(path))
    return path


def _fake_engine(folder: Path, onnx_path: Path, max_batch: int) -> Path:
    """Bytes standing in for a plan, with the sidecar a real build writes beside it."""
    engine = folder / "model.plan"
    folder.mkdir(parents=True, exist_ok=True)
    engine.write_bytes(b"not really a TensorRT plan")
    profile = {INPUT_NAME: profile_shapes((-1, SIZE, SIZE, 3), (1, 1, max_batch), INPUT_NAME)}
    sidecar = make_sidecar(
        {},
        trt_version="10.3.0",
        gpu=GpuInfo("Orin", "8.7"),
        profile=profile,
        dla=None,
        timing_cache=None,
        onnx_path=onnx_path,
        onnx_sha256="0",
        build_seconds=1.0,
    )
    atomic_write_json(sidecar_path(engine), sidecar)
    return engine


def test_onnx_repository_matches_graph(tmp_path: Path, onnx_path: Path) -> None:
    folder = write_triton_repository(tmp_path / "repo", onnx_path, None, max_batch=8)
    assert folder == tmp_path / "repo" / "glcf"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == [
        "1",
        "1/model.onnx",
        "config.pbtxt",
    ]
    assert (folder / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    config = parse_pbtxt((folder / "config.pbtxt").read_text())
    assert (config.name, config.platform, config.max_batch_size) == ("glcf", "onnxruntime_onnx", 8)
    graph = onnx.load(str(onnx_path)).graph
    for entries, values in ((config.input, graph.input), (config.output, graph.output)):
        assert [e.name for e in entries] == [v.name for v in values]
        for entry, value in zip(entries, values, strict=True):
            tensor = value.type.tensor_type
            assert dtype(entry.data_type) == EXPECTED_TYPES[tensor.elem_type]
            assert tensor.shape.dim[0].dim_param == "batch"
            dims = [d.dim_value for d in tensor.shape.dim[1:]]
            if dims:
                assert list(entry.dims) == dims and not entry.HasField("reshape")
            else:  # Triton forbids empty dims: [1] reshaped to the graph's []
                assert value.name == SCORE_NAME
                assert list(entry.dims) == [1] and entry.HasField("reshape")
                assert list(entry.reshape.shape) == []
    batching = config.dynamic_batching
    assert batching.preferred_batch_size and max(batching.preferred_batch_size) <= 8
    assert 0 < batching.max_queue_delay_microseconds <= 10_000
    (group,) = config.instance_group
    assert (group.kind, group.count) == (model_config_pb2.ModelInstanceGroup.KIND_GPU, 1)
    # the copied model serves a full batch of the declared shapes
    session = ort.InferenceSession(
        str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    image = np.zeros([8, *config.input[0].dims], np.uint8)
    outputs = session.run(None, {INPUT_NAME: image})
    for entry, array in zip(config.output, outputs, strict=True):
        shape = entry.reshape.shape if entry.HasField("reshape") else entry.dims
        assert list(array.shape) == [8, *shape]


def test_cpu_repository_for_a_cpu_only_triton(tmp_path: Path, onnx_path: Path) -> None:
    folder = write_triton_repository(tmp_path / "repo", onnx_path, None, max_batch=4, device="cpu")
    (group,) = parse_pbtxt((folder / "config.pbtxt").read_text()).instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    engine = _fake_engine(tmp_path / "engines", onnx_path, max_batch=4)
    with pytest.raises(ConfigError, match="runs only on a GPU"):
        write_triton_repository(tmp_path / "repo2", onnx_path, engine, max_batch=4, device="cpu")
    with pytest.raises(ConfigError, match="choose gpu or cpu"):
        write_triton_repository(tmp_path / "repo3", onnx_path, None, max_batch=4, device="tpu")


def test_engine_repository(tmp_path: Path, onnx_path: Path) -> None:
    engine = _fake_engine(tmp_path / "engines", onnx_path, max_batch=4)
    with pytest.raises(ConfigError, match="at most 4"):
        write_triton_repository(tmp_path / "repo", onnx_path, engine, max_batch=8)
    assert not (tmp_path / "repo" / "glcf").exists()
    folder = write_triton_repository(tmp_path / "repo", onnx_path, engine, max_batch=4)
    config = parse_pbtxt((folder / "config.pbtxt").read_text())
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 4
    assert (folder / "1" / "model.plan").read_bytes() == engine.read_bytes()
    # nothing serves the ONNX file beside a plan: it is not copied
    assert sorted(p.name for p in (folder / "1").iterdir()) == ["model.plan"]


def test_refuses_to_overwrite(tmp_path: Path, onnx_path: Path) -> None:
    repo = tmp_path / "repo"
    folder = write_triton_repository(repo, onnx_path, None, max_batch=4, model_name="line1")
    (folder / "config.pbtxt").write_text("# edited by hand\n")
    with pytest.raises(GlcfError, match=re.escape(str(folder))):
        write_triton_repository(repo, onnx_path, None, max_batch=8, model_name="line1")
    assert (folder / "config.pbtxt").read_text() == "# edited by hand\n"
    write_triton_repository(repo, onnx_path, None, max_batch=8, model_name="line1", overwrite=True)
    assert parse_pbtxt((folder / "config.pbtxt").read_text()).max_batch_size == 8
    assert [p.name for p in repo.iterdir()] == ["line1"]  # no temporary folder left


def test_rejects_unusable_requests(tmp_path: Path, onnx_path: Path) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(ConfigError, match="max_batch"):
        write_triton_repository(repo, onnx_path, None, max_batch=0)
    with pytest.raises(ConfigError, match="plain folder name"):
        write_triton_repository(repo, onnx_path, None, max_batch=4, model_name="../elsewhere")
    fixed = onnx.load(str(onnx_path))
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(fixed, str(tmp_path / "fixed.onnx"))
    with pytest.raises(ConfigError, match="dynamic batch"):
        write_triton_repository(repo, tmp_path / "fixed.onnx", None, max_batch=4)
    assert not repo.exists() or not any(repo.iterdir())
