"""The TensorRT runner's life cycle, with a fake of the few TensorRT 10 runtime calls it makes
(``Runtime.DLA_core`` / ``num_DLA_cores``, ``deserialize_cuda_engine``, name-based I/O, a context
that refuses shapes outside profile 0 as TensorRT does) and a CUDA binding that counts buffers."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from glcf_bench.fixtures.contract_model import SIZE, contract_metadata, frame
from glcf_runtime.backends import TensorRTRunner
from glcf_runtime.errors import GlcfError
from glcf_runtime.metadata import MetadataError


class Cuda:
    """Device memory as byte arrays; ``fail_at``: the n-th allocation (device or pinned) fails."""

    name = "fake-cuda"

    def __init__(self, fail_at: int | None = None) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.pinned: list[np.ndarray] = []
        self.freed: list[int] = []
        self.freed_pinned = 0
        self.streams = 0
        self.fail_at, self.allocations = fail_at, 0

    def _count(self) -> None:
        self.allocations += 1
        if self.allocations == self.fail_at:
            raise GlcfError("CUDA runtime error cudaErrorMemoryAllocation")

    def device(self) -> tuple[str, str]:
        return "Orin", "8.7"

    def malloc(self, nbytes: int) -> int:
        self._count()
        pointer = 4096 * (len(self.memory) + 1)
        self.memory[pointer] = np.zeros(nbytes, np.uint8)
        return pointer

    def free(self, pointer: int) -> None:
        self.freed.append(pointer)

    def pinned_empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        self._count()
        self.pinned.append(np.empty(shape, dtype))
        return self.pinned[-1]

    def free_pinned(self, array: np.ndarray) -> None:
        self.freed_pinned += 1

    def stream(self) -> str:
        self.streams += 1
        return "stream"

    def stream_handle(self, stream: str) -> int:
        return 7

    def htod_async(self, pointer: int, host: np.ndarray, stream: str) -> None:
        self.memory[pointer][: host.nbytes] = host.reshape(-1).view(np.uint8)

    def dtoh_async(self, host: np.ndarray, pointer: int, stream: str) -> None:
        host.reshape(-1).view(np.uint8)[:] = self.memory[pointer][: host.nbytes]

    def synchronize(self, stream: str) -> None: ...

    def destroy_stream(self, stream: str) -> None:
        self.streams -= 1


def fake_tensorrt(cuda: Cuda, profile: tuple[int, int, int], dla_cores: int = 0):
    """TensorRT's runtime surface; the "engine" scores a pixel as |v - 128| / 128, mean over BGR."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dtype: np.dtype(dtype).type
    seen: dict[str, object] = {}

    class Context:
        def __init__(self) -> None:
            self.addresses: dict[str, int] = {}
            self.shape: tuple[int, ...] = ()

        def set_tensor_address(self, name: str, pointer: int) -> bool:
            self.addresses[name] = pointer
            return True

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            if not profile[0] <= shape[0] <= profile[2]:
                return False  # TensorRT logs the error and refuses a shape outside the profile
            self.shape = tuple(shape)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            image = cuda.memory[self.addresses["image"]][: int(np.prod(self.shape))]
            maps = (np.abs(image.reshape(self.shape).astype(np.float32) - 128) / 128).mean(-1)
            for name, value in (("anomaly_map", maps), ("score", maps.max(axis=(1, 2)))):
                raw = value.astype(np.float32).reshape(-1).view(np.uint8)
                cuda.memory[self.addresses[name]][: raw.size] = raw
            return True

    names = ["image", "anomaly_map", "score"]
    engine = types.SimpleNamespace(
        num_io_tensors=3,
        get_tensor_name=names.__getitem__,
        get_tensor_mode=lambda n: "in" if n == "image" else "out",
        get_tensor_dtype=lambda n: "uint8" if n == "image" else "float32",
        get_tensor_profile_shape=lambda n, p: [[b, SIZE, SIZE, 3] for b in profile],
        create_execution_context=Context,
    )

    class Runtime:
        num_DLA_cores = dla_cores

        def __init__(self, logger: object) -> None:
            self.DLA_core = -1  # TensorRT's default: no DLA core chosen

        def deserialize_cuda_engine(self, data: bytes) -> object:
            seen["DLA_core"] = self.DLA_core
            return engine

    trt.Runtime = Runtime
    return trt, seen


def _engine(folder: Path, profile: tuple[int, int, int], dla: dict | None = None) -> Path:
    engine = folder / "model.engine"
    engine.write_bytes(b"serialized engine")
    shapes = {k: [b, SIZE, SIZE, 3] for k, b in zip(("min", "opt", "max"), profile, strict=True)}
    sidecar = {**contract_metadata().to_props(), "tensorrt_version": "10.3.0", "gpu_name": "Orin",
               "compute_capability": "8.7", "profile": {"image": shapes}, "dla": dla}
    (folder / "model.engine.json").write_text(json.dumps(sidecar))
    return engine


def _runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuda: Cuda,
            profile: tuple[int, int, int] = (1, 1, 4), dla: dict | None = None,
            dla_cores: int = 0) -> tuple[TensorRTRunner, dict]:
    trt, seen = fake_tensorrt(cuda, profile, dla_cores)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return TensorRTRunner(_engine(tmp_path, profile, dla), cuda=cuda), seen


def test_the_engine_runs_on_the_dla_core_it_was_built_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, seen = _runner(tmp_path, monkeypatch, Cuda(), (2, 2, 2),
                           {"core": 1, "gpu_fallback": True}, dla_cores=2)
    assert seen["DLA_core"] == 1  # set on the runtime before the engine is deserialised
    assert "DLA core 1" in runner.describe()
    runner.close()
    runner, seen = _runner(tmp_path, monkeypatch, Cuda())
    assert seen["DLA_core"] == -1  # a GPU engine leaves the runtime's default alone
    runner.close()


def test_a_dla_core_this_device_lacks_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = Cuda()
    with pytest.raises(GlcfError, match=r"DLA core 1.*this device has 1 DLA core"):
        _runner(tmp_path, monkeypatch, cuda, (2, 2, 2), {"core": 1}, dla_cores=1)
    assert cuda.allocations == 0
    with pytest.raises(MetadataError, match="dla"):
        _runner(tmp_path, monkeypatch, cuda, (2, 2, 2), {"core": "one"}, dla_cores=2)


def test_a_fixed_batch_engine_takes_fewer_frames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DLA engine has one batch size (4 here); one frame is padded to it, not refused."""
    runner, _ = _runner(tmp_path, monkeypatch, Cuda(), (4, 4, 4), {"core": 0}, dla_cores=1)
    with runner:
        for batch in (frame(True)[None], np.stack([frame(False), frame(True), frame(False)])):
            maps, scores = runner.infer(batch)
            want = (np.abs(batch.astype(np.float32) - 128) / 128).mean(-1)
            assert maps.shape == want.shape and scores.shape == (len(batch),)
            np.testing.assert_allclose(maps, want, atol=1e-6)


def test_infer_after_close_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = Cuda()
    runner, _ = _runner(tmp_path, monkeypatch, cuda)
    runner.infer(frame(False)[None])
    runner.close()
    runner.close()  # idempotent
    with pytest.raises(GlcfError, match=r"model\.engine.*closed"):
        runner.infer(frame(False)[None])
    assert sorted(cuda.freed) == sorted(cuda.memory) and cuda.freed_pinned == 3
    assert cuda.streams == 0


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5, 6])
def test_a_failed_allocation_frees_what_was_allocated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    """Three pinned host and three device buffers; the n-th one fails."""
    cuda = Cuda(fail_at=fail_at)
    with pytest.raises(GlcfError, match="cudaErrorMemoryAllocation"):
        _runner(tmp_path, monkeypatch, cuda)
    assert sorted(cuda.freed) == sorted(cuda.memory)  # every device buffer made was freed
    assert cuda.freed_pinned == len(cuda.pinned) and cuda.streams == 0
