"""Build a TensorRT 10 engine from an exported ONNX file, on the device that will run it.

An engine only runs on the GPU model and TensorRT version that built it, so it is built where it
is deployed (DESIGN §4). The network is **strongly typed**: the precision decisions are the ONNX
file's own (``model.fp16.onnx`` holds FP16 inside with explicit Casts), and no FP16/INT8 builder
flag is set, which keeps the build the same on TensorRT 10 and 11. The engine is saved with a JSON
sidecar ``<engine>.json`` that carries the artifact's metadata plus the build's facts.

The TensorRT calls follow NVIDIA's TensorRT Python API reference and "Python API Documentation"
(build phase), the samples ``samples/python/strongly_type_autocast`` and ``detectron2/build_engine``,
and Polygraphy's ``CreateConfig`` (timing cache, DLA).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glcf_runtime.backends.tensorrt.probe import (
    GpuInfo,
    TrtVersion,
    gpu_info,
    parse_trt_version,
    require_tensorrt,
)
from glcf_runtime.backends.tensorrt.sidecar import sidecar_path
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.files import atomic_write_bytes, atomic_write_json, file_sha256

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["BuildOptions", "build_engine"]

# DLA with a strongly typed network (TensorRT "Strongly Typed Networks for DLA", "Working with
# DLA"): the precision builder flags (FP16, INT8, PREFER/OBEY_PRECISION_CONSTRAINTS) are not valid,
# precision comes from the tensor types alone, and DLA computes only FP16/INT8. So only FP16 tensors
# of the mixed file can run on DLA; FP32 layers (LayerNorm, Softmax, the scoring tail) go to the GPU
# through GPU_FALLBACK, and explicit Casts mark the DLA/GPU boundaries. DLA has no dynamic shapes:
# the profile's min, opt and max must be equal, and the engine runs that one batch size. TensorRT
# 10.x has DLA up to 10.7 (JetPack 6 ships 10.3); 11.x has it again from 11.4.1 on Orin (JetPack
# 7.2.2 or later). ``builder.num_DLA_cores`` says whether this device has any.
DLA_NOTE = (
    "strongly typed: DLA runs only the FP16 tensors of the graph (build from model.fp16.onnx); "
    "FP32 layers fall back to the GPU"
)
_BUILD_KEYS = (
    "tensorrt_version",
    "gpu_name",
    "compute_capability",
    "profile",
    "dla",
    "timing_cache",
    "onnx_file",
    "onnx_sha256",
    "build_seconds",
)


@dataclass(frozen=True)
class BuildOptions:
    # Optimisation profile over the batch axis (min, opt, max); opt 1 favours one camera's latency.
    # With DLA all three must be equal: DLA runs one fixed batch size.
    batch: tuple[int, int, int] = (1, 1, 8)
    workspace_mb: int | None = None  # None: TensorRT's default (the device's global memory)
    dla_core: int | None = None  # None: GPU only
    timing_cache: Path | None = None  # read if it exists, written back after the build

    def __post_init__(self) -> None:
        if len(self.batch) != 3 or not all(isinstance(b, int) for b in self.batch):
            raise ConfigError(f"batch must be three integers (min, opt, max), got {self.batch!r}")
        lo, opt, hi = self.batch
        if not 1 <= lo <= opt <= hi:
            raise ConfigError(
                f"batch (min, opt, max) = {self.batch} must satisfy 1 <= min <= opt <= max"
            )
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise ConfigError(f"workspace_mb must be at least 1, got {self.workspace_mb}")
        if self.dla_core is not None and self.dla_core < 0:
            raise ConfigError(f"dla_core must be 0 or more, got {self.dla_core}")
        if self.dla_core is not None and not lo == opt == hi:
            raise ConfigError(
                f"DLA core {self.dla_core} was asked for with the batch range (min, opt, max) = "
                f"{self.batch}, but DLA has no dynamic shapes: a DLA engine serves one fixed "
                f"batch. Build it for one batch size, e.g. glcf engine build MODEL_DIR --dla "
                f"{self.dla_core} --batch 4 (the same as --batch 4,4,4; a smaller batch is padded "
                "to it), or drop --dla for a GPU engine that serves the range"
            )


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    metadata_props: dict[str, str],
    options: BuildOptions,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build ``engine_path`` (and its sidecar ``<engine>.json``) from ``onnx_path``.

    Both files are written to a temporary name and renamed, so a failed build leaves any earlier
    engine as it was. Returns the sidecar.

    Raises:
        TensorRTUnavailable: no TensorRT or no GPU here (nothing is read or written then).
        ConfigError: unusable paths or options for this ONNX file or device.
        GlcfError: TensorRT could not parse the file or build the engine.
    """
    version = parse_trt_version(require_tensorrt().__version__)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    _check_paths(onnx_path, engine_path)
    check_dla(metadata_props, options)
    gpu = gpu_info()
    start = time.perf_counter()
    engine, cache, profile = _build(version, onnx_path, options, log)
    seconds = time.perf_counter() - start
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(engine_path, engine)
    if options.timing_cache is not None and cache is not None:
        options.timing_cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(options.timing_cache, cache)
    sidecar = make_sidecar(
        metadata_props,
        trt_version=version.text,
        gpu=gpu,
        profile=profile,
        dla=None if options.dla_core is None else {"core": options.dla_core, "gpu_fallback": True},
        timing_cache=options.timing_cache,
        onnx_path=onnx_path,
        onnx_sha256=file_sha256(onnx_path),
        build_seconds=seconds,
    )
    atomic_write_json(sidecar_path(engine_path), sidecar)
    log(
        f"engine: {engine_path} ({engine_path.stat().st_size / 2**20:.1f} MiB, {seconds:.0f} s, "
        f"TensorRT {version.text} on {gpu.name}); metadata: {sidecar_path(engine_path)}"
    )
    return sidecar


def _check_paths(onnx_path: Path, engine_path: Path) -> None:
    if not onnx_path.is_file():
        raise ConfigError(f"ONNX file {onnx_path} does not exist; export one first (glcf export)")
    if (
        engine_path.suffix.lower() in (".onnx", ".json")
        or engine_path.resolve() == onnx_path.resolve()
    ):
        raise ConfigError(
            f"engine path {engine_path} would overwrite an ONNX or JSON file; "
            "name the engine <name>.plan or <name>.engine"
        )


def check_dla(metadata_props: dict[str, str], options: BuildOptions) -> None:
    """Refuse DLA for an FP32 file: with a strongly typed network nothing of it could run on DLA."""
    precision = metadata_props.get("precision", "fp32")
    if options.dla_core is not None and precision == "fp32":
        raise ConfigError(
            f"DLA core {options.dla_core} was asked for an FP32 artifact; {DLA_NOTE}. "
            "Build model.fp16.onnx for DLA, or drop the DLA option"
        )


def network_flags(version: TrtVersion) -> int:
    """``create_network`` flags for a strongly typed network: TensorRT 10.x asks for it with
    STRONGLY_TYPED; 11.x always builds one and ignores that (deprecated) flag."""
    import tensorrt as trt

    if version.strongly_typed_always:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _build(
    version: TrtVersion, onnx_path: Path, options: BuildOptions, log: Callable[[str], None]
) -> tuple[memoryview, memoryview | None, dict[str, dict[str, list[int]]]]:
    """Parse, configure and build; returns the engine, the timing cache and the profile shapes."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(version))
    parser = trt.OnnxParser(network, logger)  # keeps the weights alive until the build is done
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise GlcfError(
            f"TensorRT {version.text} cannot parse {onnx_path}:\n{errors}\n"
            "check the operators with glcf_export.trt_ops.op_report"
        )
    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    shapes = _add_profile(builder, network, config, options.batch)
    if options.dla_core is not None:
        _use_dla(builder, config, options.dla_core)
    keep_cache = _set_timing_cache(config, options.timing_cache, log)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise GlcfError(
            f"TensorRT could not build an engine from {onnx_path}; see its messages "
            f"above (workspace_mb={options.workspace_mb}: raise it if tactics ran out "
            "of memory)"
        )
    cache = memoryview(config.get_timing_cache().serialize()) if keep_cache else None
    return memoryview(engine), cache, shapes


def _add_profile(
    builder: trt.Builder,
    network: trt.INetworkDefinition,
    config: trt.IBuilderConfig,
    batch: tuple[int, int, int],
) -> dict[str, dict[str, list[int]]]:
    """One optimisation profile over the batch axis of every network input."""
    import tensorrt as trt

    profile = builder.create_optimization_profile()
    shapes = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        s = shapes[tensor.name] = profile_shapes(tuple(tensor.shape[:]), batch, tensor.name)
        profile.set_shape(tensor.name, *(trt.Dims(s[k]) for k in ("min", "opt", "max")))
    config.add_optimization_profile(profile)
    return shapes


def _use_dla(builder: trt.Builder, config: trt.IBuilderConfig, core: int) -> None:
    """Run what DLA can on ``core`` and the rest on the GPU (see DLA_NOTE above)."""
    import tensorrt as trt

    if core >= builder.num_DLA_cores:
        raise ConfigError(
            f"DLA core {core} was asked for; this device has {builder.num_DLA_cores} DLA core(s) "
            "(Jetson AGX Orin has 2, Orin NX 1 or 2, Orin Nano and Thor none): choose --dla "
            "below that, or drop --dla"
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def _set_timing_cache(
    config: trt.IBuilderConfig, path: Path | None, log: Callable[[str], None]
) -> bool:
    """Load the timing cache at ``path`` into ``config``; False where it must not be written back."""
    blob = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return path is not None
    log(
        f"timing cache {path} was made by another device or TensorRT version; building without "
        "it and leaving the file as it is"
    )
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return False


def profile_shapes(
    shape: tuple[int, ...], batch: tuple[int, int, int], name: str
) -> dict[str, list[int]]:
    """Min/opt/max shapes of one network input whose only dynamic axis is the batch (axis 0).

    Raises:
        ConfigError: the batch axis is fixed at another size, or another axis is dynamic.
    """
    if any(d < 0 for d in shape[1:]):
        raise ConfigError(
            f"input {name!r} has shape {list(shape)}: only the batch axis may be dynamic"
        )
    if shape and shape[0] >= 0 and (batch[0] != shape[0] or batch[2] != shape[0]):
        raise ConfigError(
            f"input {name!r} has a fixed batch of {shape[0]}; re-export with a dynamic batch axis "
            f"or build with batch ({shape[0]}, {shape[0]}, {shape[0]})"
        )
    rest = list(shape[1:])
    return {key: [b, *rest] for key, b in zip(("min", "opt", "max"), batch, strict=True)}


def make_sidecar(
    props: dict[str, str],
    *,
    trt_version: str,
    gpu: GpuInfo,
    profile: dict[str, dict[str, list[int]]],
    dla: dict[str, Any] | None,
    timing_cache: Path | None,
    onnx_path: Path,
    onnx_sha256: str,
    build_seconds: float,
) -> dict[str, Any]:
    """The engine's JSON sidecar: the ONNX metadata props (the runtime contract) + build facts.

    Raises:
        ConfigError: a metadata key that would shadow a build fact.
    """
    clash = sorted(set(_BUILD_KEYS) & set(props))
    if clash:
        raise ConfigError(f"metadata keys {clash} clash with the engine sidecar's own keys")
    return {
        **props,
        "tensorrt_version": trt_version,
        "gpu_name": gpu.name,
        "compute_capability": gpu.compute_capability,
        "precision": props.get("precision", "fp32"),
        "profile": profile,  # {input name: {"min": [B, H, W, 3], "opt": ..., "max": ...}}
        "dla": None if dla is None else {**dla, "note": DLA_NOTE},
        "timing_cache": None if timing_cache is None else str(timing_cache),
        "onnx_file": onnx_path.name,
        "onnx_sha256": onnx_sha256,
        "build_seconds": round(build_seconds, 2),
    }
