"""Backends: the file-type table, input checks, ONNX Runtime, TensorRT (faked here, real on a GPU)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest

from glcf_bench.fixtures.contract_model import (
    SIZE,
    contract_metadata,
    contract_model,
    frame,
    write_model,
)
from glcf_runtime.artifacts import THRESHOLD_FILE
from glcf_runtime.backends import (
    BACKEND_BY_SUFFIX,
    Backend,
    OnnxRuntimeRunner,
    Runner,
    TensorRTRunner,
    open_runner,
    resolve_artifact,
)
from glcf_runtime.backends.onnxruntime import choose_providers
from glcf_runtime.backends.tensorrt.runner import check_compatible
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.metadata import MetadataError
from glcf_runtime.threshold import load_threshold

SIDECAR_BUILD = {
    "tensorrt_version": "10.3.0",
    "gpu_name": "Orin",
    "compute_capability": "8.7",
    "profile": {
        "image": {"min": [1, SIZE, SIZE, 3], "opt": [2, SIZE, SIZE, 3], "max": [4, SIZE, SIZE, 3]}
    },
}


def _reference(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps = (np.abs(batch.astype(np.float32) - 128) / 128).mean(-1)
    return maps, maps.max(axis=(1, 2))


def _engine(folder: Path) -> Path:
    """A fake ``model.engine`` (bytes unused) with a valid sidecar."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = folder / "model.engine"
    engine.write_bytes(b"serialized engine")
    (folder / "model.engine.json").write_text(
        json.dumps({**contract_metadata().to_props(), **SIDECAR_BUILD})
    )
    return engine


def test_backend_table() -> None:
    assert BACKEND_BY_SUFFIX == {
        ".onnx": Backend.ONNXRUNTIME,
        ".engine": Backend.TENSORRT,
        ".plan": Backend.TENSORRT,
    }


def test_resolve_artifact_folder_and_files(tmp_path: Path) -> None:
    onnx_path = write_model(tmp_path)
    assert resolve_artifact(tmp_path) == (onnx_path, Backend.ONNXRUNTIME)
    engine = _engine(tmp_path)
    assert resolve_artifact(tmp_path) == (engine, Backend.TENSORRT)  # engine preferred
    assert resolve_artifact(tmp_path, "onnxruntime") == (onnx_path, Backend.ONNXRUNTIME)
    assert resolve_artifact(engine) == (engine, Backend.TENSORRT)
    with pytest.raises(ConfigError, match=r"\.onnx → onnxruntime"):
        resolve_artifact(tmp_path / "model.engine.json")
    with pytest.raises(ConfigError, match="--provider tensorrt"):
        resolve_artifact(onnx_path, "tensorrt")
    with pytest.raises(ConfigError, match="choose onnxruntime, tensorrt, openvino, auto"):
        resolve_artifact(onnx_path, "tflite")
    assert resolve_artifact(onnx_path, "openvino") == (onnx_path, Backend.OPENVINO)
    with pytest.raises(ConfigError, match="no model"):
        resolve_artifact(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="takes no providers"):
        open_runner(engine, providers=["cpu"])


def test_onnxruntime_runner_scores_the_contract(tmp_path: Path) -> None:
    batch = np.stack([frame(False), frame(True), frame(False, seed=3)])
    with open_runner(write_model(tmp_path), threads=1, optimization="basic") as runner:
        assert isinstance(runner, OnnxRuntimeRunner) and runner.max_batch is None
        assert runner.providers == ["CPUExecutionProvider"]
        maps, scores = runner.infer(batch)
        runner.warmup(1, batch_size=2)
    ref_maps, ref_scores = _reference(batch)
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32 and scores.shape == (3,)
    np.testing.assert_allclose(maps, ref_maps, atol=1e-6)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert scores[1] > 0.9 > 0.1 > scores[0]


class _Recording(Runner):
    backend = "recording"

    def __init__(self, max_batch: int | None) -> None:
        super().__init__(Path("model.onnx"), contract_metadata())
        self._max, self.calls = max_batch, 0

    @property
    def max_batch(self) -> int | None:
        return self._max

    def _infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        return _reference(batch)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (np.zeros((1, SIZE, SIZE, 3), np.float32), "dtype float32"),
        (np.zeros((SIZE, SIZE, 3), np.uint8), r"shape \(64, 64, 3\)"),
        (np.zeros((1, 32, 32, 3), np.uint8), r"\[B, 64, 64, 3\]"),
        (np.zeros((1, SIZE, SIZE, 4), np.uint8), "got shape"),
        (np.zeros((0, SIZE, SIZE, 3), np.uint8), "1 to 2"),
        (np.zeros((3, SIZE, SIZE, 3), np.uint8), "lower --batch"),
        ([[0]], "numpy array"),
    ],
)
def test_input_checks_run_before_the_backend(batch: np.ndarray, message: str) -> None:
    runner = _Recording(max_batch=2)
    with pytest.raises(ConfigError, match=message):
        runner.infer(batch)
    assert runner.calls == 0
    runner.infer(np.zeros((2, SIZE, SIZE, 3), np.uint8))
    assert runner.calls == 1


def test_onnxruntime_runner_checks_input_and_fixed_batch(tmp_path: Path) -> None:
    with OnnxRuntimeRunner(write_model(tmp_path, batch=2)) as runner:
        assert runner.max_batch == 2
        with pytest.raises(ConfigError, match="dtype float32"):
            runner.infer(np.zeros((1, SIZE, SIZE, 3), np.float32))
        with pytest.raises(ConfigError, match="1 to 2"):
            runner.infer(np.zeros((3, SIZE, SIZE, 3), np.uint8))


def test_foreign_onnx_is_refused_with_rebuild_hint(tmp_path: Path) -> None:
    path = tmp_path / "foreign.onnx"
    onnx.save(contract_model(metadata=None), str(path))
    with pytest.raises(
        MetadataError, match=r"not a GLCF deploy artifact.*glcf export RUN --out DIR"
    ):
        OnnxRuntimeRunner(path)
    path.write_bytes(b"not a protobuf")
    with pytest.raises(GlcfError, match="onnxruntime cannot load"):
        OnnxRuntimeRunner(path)


def test_provider_choice_and_options(tmp_path: Path) -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider", "AzureExecutionProvider"]
    assert choose_providers(None, available) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["cpu"], available) == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="TensorrtExecutionProvider not available"):
        choose_providers(["tensorrt"], available)
    with pytest.raises(ConfigError, match="optimization 'max'"):
        OnnxRuntimeRunner(write_model(tmp_path), optimization="max")


def test_threshold_json_precedence_and_staleness(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    meta = contract_metadata()
    assert load_threshold(path, meta).value == 0.5
    with OnnxRuntimeRunner(path) as runner:
        from glcf_runtime.threshold import save_threshold

        written = save_threshold(runner, {"threshold": 0.25, "rule": "normal_quantile"}, {})
    assert written == tmp_path / THRESHOLD_FILE and not list(tmp_path.glob(".*.tmp"))
    choice = load_threshold(path, meta)
    assert choice.value == 0.25 and THRESHOLD_FILE in choice.origin
    assert load_threshold(path, contract_metadata(config_hash="other")).value == 0.5
    write_model(tmp_path, contract_metadata(threshold=0.7))  # re-exported: other bytes
    assert load_threshold(path, meta).origin.endswith("is stale and was ignored)")
    written.write_text("{broken")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_threshold(path, meta)


def test_tensorrt_runner_without_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt → ImportError
    with pytest.raises(
        GlcfError, match=r"needs the tensorrt Python package.*--backend onnxruntime"
    ):
        TensorRTRunner(_engine(tmp_path))


def test_tensorrt_engine_without_sidecar(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    engine.with_name("model.engine.json").unlink()
    with pytest.raises(MetadataError, match=r"no sidecar model.engine.json.*--trt"):
        TensorRTRunner(engine)


def test_engine_built_elsewhere_must_be_rebuilt() -> None:
    check_compatible(SIDECAR_BUILD, Path("m.engine"), "10.3.0", ("Orin", "8.7"))
    for here in (("10.7.0", ("Orin", "8.7")), ("10.3.0", ("NVIDIA H100", "9.0"))):
        with pytest.raises(
            GlcfError,
            match=r"built with TensorRT 10.3.0 for Orin \(compute "
            r"capability 8.7\).*glcf export RUN --out DIR --trt",
        ):
            check_compatible(SIDECAR_BUILD, Path("m.engine"), *here)


class _FakeCuda:
    """Device memory as numpy byte arrays keyed by fake pointers."""

    name = "fake-cuda"

    def __init__(self) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.freed: list[int] = []

    def device(self) -> tuple[str, str]:
        return "Orin", "8.7"

    def malloc(self, nbytes: int) -> int:
        pointer = 4096 * (len(self.memory) + 1)
        self.memory[pointer] = np.zeros(nbytes, np.uint8)
        return pointer

    def free(self, pointer: int) -> None:
        self.freed.append(pointer)

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None: ...

    def stream(self) -> str:
        return "stream"

    def stream_handle(self, stream: str) -> int:
        return 7

    def htod_async(self, pointer: int, host: np.ndarray, stream: str) -> None:
        self.memory[pointer][: host.nbytes] = host.reshape(-1).view(np.uint8)

    def dtoh_async(self, host: np.ndarray, pointer: int, stream: str) -> None:
        host.reshape(-1).view(np.uint8)[:] = self.memory[pointer][: host.nbytes]

    def synchronize(self, stream: str) -> None: ...

    def destroy_stream(self, stream: str) -> None: ...


def _fake_tensorrt(cuda: _FakeCuda) -> types.ModuleType:
    """Just the TensorRT 10 Python API surface the runner uses, computing the contract model."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dtype: np.dtype(dtype).type
    names = ["image", "anomaly_map", "score"]

    class Context:
        def __init__(self) -> None:
            self.addresses: dict[str, int] = {}
            self.shape: tuple[int, ...] | None = None

        def set_tensor_address(self, name: str, pointer: int) -> bool:
            self.addresses[name] = pointer
            return True

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.shape = tuple(shape)
            return name == "image"

        def execute_async_v3(self, stream_handle: int) -> bool:
            n = self.shape[0]
            image = cuda.memory[self.addresses["image"]][: int(np.prod(self.shape))]
            maps, scores = _reference(image.reshape(self.shape))
            for name, value in (("anomaly_map", maps), ("score", scores)):
                raw = value.astype(np.float32).reshape(-1).view(np.uint8)
                cuda.memory[self.addresses[name]][: raw.size] = raw
            return stream_handle == 7 and n >= 1

    engine = types.SimpleNamespace(
        num_io_tensors=3,
        get_tensor_name=names.__getitem__,
        get_tensor_mode=lambda n: "in" if n == "image" else "out",
        get_tensor_dtype=lambda n: "uint8" if n == "image" else "float32",
        get_tensor_profile_shape=lambda n, p: (
            [1, SIZE, SIZE, 3],
            [2, SIZE, SIZE, 3],
            [4, SIZE, SIZE, 3],
        ),
        create_execution_context=Context,
    )
    trt.Runtime = type(
        "Runtime",
        (),
        {
            "__init__": lambda self, logger: None,
            "deserialize_cuda_engine": lambda self, data: engine,
        },
    )
    return trt


def test_tensorrt_runner_flow_with_fake_tensorrt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuda = _FakeCuda()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(cuda))
    with TensorRTRunner(_engine(tmp_path), cuda=cuda) as runner:
        assert runner.max_batch == 4 and "Orin" in runner.describe()
        for batch in (np.stack([frame(True), frame(False)]), frame(False, seed=5)[None]):
            maps, scores = runner.infer(batch)
            ref_maps, ref_scores = _reference(batch)
            np.testing.assert_allclose(maps, ref_maps, atol=1e-6)
            np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
        with pytest.raises(ConfigError, match="lower --batch"):
            runner.infer(np.zeros((5, SIZE, SIZE, 3), np.uint8))
    assert len(cuda.freed) == 3


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_runner_matches_onnxruntime_on_gpu(tmp_path: Path) -> None:
    trt = pytest.importorskip("tensorrt")
    onnx_path = write_model(tmp_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes())
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, SIZE, SIZE, 3), (2, SIZE, SIZE, 3), (4, SIZE, SIZE, 3))
    config.add_optimization_profile(profile)
    engine = tmp_path / "model.engine"
    engine.write_bytes(bytes(builder.build_serialized_network(network, config)))
    from glcf_runtime.backends.tensorrt.cuda import load_cuda_api

    name, capability = load_cuda_api().device()
    (tmp_path / "model.engine.json").write_text(
        json.dumps(
            {
                **contract_metadata().to_props(),
                "tensorrt_version": trt.__version__,
                "gpu_name": name,
                "compute_capability": capability,
            }
        )
    )
    batch = np.stack([frame(True), frame(False), frame(False, seed=2)])
    with open_runner(tmp_path) as runner, OnnxRuntimeRunner(onnx_path) as reference:
        assert isinstance(runner, TensorRTRunner)
        for got, want in zip(runner.infer(batch), reference.infer(batch), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)
