"""The build path with a fake of TensorRT's builder API (names as in the 10.3 and 11.4 bindings):
one code path for TensorRT 10 and 11, chosen by the version (strongly typed by a creation flag on
10.x, always on 11.x where the flag is deprecated), and what a DLA build configures."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from glcf_runtime.backends.tensorrt import probe
from glcf_runtime.backends.tensorrt.build import BuildOptions, build_engine
from glcf_runtime.backends.tensorrt.probe import parse_trt_version
from glcf_runtime.backends.tensorrt.sidecar import read_sidecar
from glcf_runtime.errors import ConfigError
from tests.glcf_runtime.backends.tensorrt.test_tensorrt_build import SIZE, metadata, save_model

STRONGLY_TYPED = 5  # NetworkDefinitionCreationFlag.STRONGLY_TYPED's value in 10.3 and 11.4


def fake_builder_api(version: str, dla_cores: int = 0) -> tuple[types.ModuleType, dict]:
    """``Builder`` / ``create_network`` / ``OnnxParser`` / ``IBuilderConfig`` / profiles; the
    returned dict records what the build asked for."""
    seen: dict = {"flags": None, "shapes": {}, "config": {}, "builder_flags": set()}
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    trt.Dims = list  # Dims(shape: list[int]) behaves as a sequence of ints
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=STRONGLY_TYPED)
    trt.DeviceType = types.SimpleNamespace(GPU="GPU", DLA="DLA")
    trt.BuilderFlag = types.SimpleNamespace(GPU_FALLBACK="GPU_FALLBACK")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    image = types.SimpleNamespace(name="image", shape=(-1, SIZE, SIZE, 3))
    network = types.SimpleNamespace(num_inputs=1, get_input=lambda i: image)

    class Profile:
        def set_shape(self, name: str, lo: list, opt: list, hi: list) -> None:
            seen["shapes"][name] = (lo, opt, hi)

    class Cache:
        def serialize(self) -> bytes:
            return b"cache"

    class Config:
        def __setattr__(self, key: str, value: object) -> None:
            seen["config"][key] = value

        def add_optimization_profile(self, profile: Profile) -> int:
            return 0

        def set_flag(self, flag: str) -> None:
            seen["builder_flags"].add(flag)

        def create_timing_cache(self, blob: bytes) -> Cache:
            return Cache()

        def set_timing_cache(self, cache: Cache, ignore_mismatch: bool) -> bool:
            return True

        def get_timing_cache(self) -> Cache:
            return Cache()

    class Builder:
        num_DLA_cores = dla_cores

        def __init__(self, logger: object) -> None: ...

        def create_network(self, flags: int = 0) -> types.SimpleNamespace:
            seen["flags"] = flags
            return network

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, net: object, config: Config) -> bytes:
            return b"plan"

    class OnnxParser:
        num_errors = 0

        def __init__(self, net: object, logger: object) -> None: ...

        def parse_from_file(self, path: str) -> bool:
            return Path(path).is_file()

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    return trt, seen


@pytest.fixture
def orin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU, whichever CUDA binding would report it."""
    device = types.SimpleNamespace(device=lambda: ("Orin", "8.7"))
    monkeypatch.setattr(probe, "load_cuda_api", lambda: device)


def _build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, options: BuildOptions,
           dla_cores: int = 0) -> tuple[dict, dict]:
    trt, seen = fake_builder_api(version, dla_cores)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    source = save_model(tmp_path / "models")
    engine = tmp_path / "models" / "model.engine"
    build_engine(source, engine, metadata().to_props(), options, log=lambda line: None)
    return seen, read_sidecar(engine)


@pytest.mark.parametrize(("version", "flags"), [
    ("10.3.0", 1 << STRONGLY_TYPED), ("10.13.3.9", 1 << STRONGLY_TYPED), ("11.4.0.106", 0)])
def test_strong_typing_by_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, orin: None,
                                  version: str, flags: int) -> None:
    seen, sidecar = _build(tmp_path, monkeypatch, version, BuildOptions(batch=(1, 2, 4)))
    assert seen["flags"] == flags
    assert seen["shapes"]["image"] == ([1, SIZE, SIZE, 3], [2, SIZE, SIZE, 3], [4, SIZE, SIZE, 3])
    assert sidecar["tensorrt_version"] == version and sidecar["dla"] is None
    assert "default_device_type" not in seen["config"]


def test_a_dla_build_runs_on_the_dla_with_one_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, orin: None) -> None:
    seen, sidecar = _build(tmp_path, monkeypatch, "10.3.0",
                           BuildOptions(batch=(2, 2, 2), dla_core=1), dla_cores=2)
    assert seen["config"] == {"default_device_type": "DLA", "DLA_core": 1}
    assert seen["builder_flags"] == {"GPU_FALLBACK"}
    assert seen["shapes"]["image"] == ([2, SIZE, SIZE, 3],) * 3
    assert sidecar["dla"]["core"] == 1 and sidecar["dla"]["gpu_fallback"] is True


def test_a_dla_core_the_device_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     orin: None) -> None:
    with pytest.raises(ConfigError, match=r"DLA core 1 .*0 DLA core"):
        _build(tmp_path, monkeypatch, "10.3.0", BuildOptions(batch=(1, 1, 1), dla_core=1))
    assert not (tmp_path / "models" / "model.engine").exists()


@pytest.mark.parametrize(("text", "parts"), [
    ("10.3.0", (10, 3)), ("11.4.0.106", (11, 4)), ("10.13.3.9.post1", (10, 13))])
def test_version_parse(text: str, parts: tuple[int, int]) -> None:
    version = parse_trt_version(text)
    assert (version.major, version.minor) == parts and version.text == text
    assert version.strongly_typed_always == (version.major >= 11)


def test_an_unreadable_version_is_an_error() -> None:
    with pytest.raises(probe.TensorRTUnavailable, match="'dev'"):
        parse_trt_version("dev")
