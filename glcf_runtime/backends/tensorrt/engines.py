"""Engines kept next to the model they were built from: which ONNX file to build, whether an engine
fits this device, and the engine built on first use by ``glcf inspect --backend tensorrt``.

``glcf export --trt`` and ``glcf engine build`` write ``model.engine``. An engine built on first
use is named after the device and TensorRT version (``model.engine.<gpu>-sm<cc>-trt<version>``),
so building one never replaces a file the user or another command wrote, and one export folder can
serve several device types. Everything here imports no torch; tensorrt and cuda-python only when
an engine is checked or built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from glcf_runtime.artifacts import ENGINE_FILE, FP16_FILE, RUN_MODES, TIMING_CACHE
from glcf_runtime.backends.tensorrt.build import BuildOptions, build_engine
from glcf_runtime.backends.tensorrt.probe import GpuInfo, gpu_info, require_tensorrt
from glcf_runtime.backends.tensorrt.sidecar import read_sidecar, sidecar_path
from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import MetadataError, read_onnx_props

Log = Callable[[str], None]


def _mode(int8: bool) -> str:
    """The run mode an engine of an export folder serves: its source holds the precision decisions
    (the mixed file the FP16 ones, DESIGN §4; the INT8 file the QDQ ones), built strongly typed."""
    return "tensorrt-int8" if int8 else "tensorrt"


def onnx_source(model: str | Path, int8: bool = False) -> Path:
    """The ONNX file to build: ``model`` itself, or the export folder's mixed FP16 (or INT8) file.

    Raises:
        ConfigError: no such file, or a file that is not ONNX.
    """
    model = Path(model)
    if model.is_dir():
        name = RUN_MODES[_mode(int8)].file
        if not (model / name).is_file():
            how = "glcf export RUN --out DIR --int8" if int8 else "glcf export RUN --out DIR"
            raise ConfigError(f"{model} holds no {name}; export it with {how}, or give an .onnx file")
        return model / name
    if not model.is_file():
        raise ConfigError(f"no model at {model}; give {FP16_FILE} or an export folder")
    if model.suffix.lower() != ".onnx":
        raise ConfigError(f"{model} is not an ONNX file; give {FP16_FILE} or an export folder")
    return model


def device_tag(trt_version: str, gpu: GpuInfo) -> str:
    """``nvidia-h100-80gb-hbm3-sm9.0-trt10.3.0`` — what an engine built here is valid for."""
    name = re.sub(r"[^a-z0-9]+", "-", gpu.name.lower()).strip("-")
    return f"{name}-sm{gpu.compute_capability}-trt{trt_version}"


@dataclass(frozen=True)
class EngineMatch:
    """Whether ``engine`` runs here: ``ok``, and the reason in words either way."""

    engine: Path
    ok: bool
    reason: str


def engine_matches(engine: Path, trt_version: str, gpu: GpuInfo) -> EngineMatch:
    """Compare an engine's sidecar (TensorRT version, GPU, compute capability) with this device."""
    try:
        sidecar = read_sidecar(engine)
    except MetadataError as exc:
        return EngineMatch(engine, False, str(exc))
    built = (str(sidecar.get("tensorrt_version")), str(sidecar.get("gpu_name")),
             str(sidecar.get("compute_capability")))
    here = (trt_version, gpu.name, gpu.compute_capability)
    words = "TensorRT {} on {} (compute capability {})"
    if built != here:
        return EngineMatch(engine, False, f"built with {words.format(*built)}; this device has "
                                          f"{words.format(*here)}")
    return EngineMatch(engine, True, f"built for this device: {words.format(*here)}")


def check_engine(engine: str | Path) -> EngineMatch:
    """``glcf engine check``: does ``engine`` run on this GPU and TensorRT version?

    Raises:
        ConfigError: no engine file there.
        TensorRTUnavailable: no tensorrt, cuda-python or GPU here (nothing to compare with).
    """
    engine = Path(engine)
    if not engine.is_file():
        raise ConfigError(f"no engine at {engine}; build one with glcf engine build MODEL_DIR")
    trt = require_tensorrt()
    return engine_matches(engine, trt.__version__, gpu_info())


def engine_for_folder(folder: Path, log: Log, batch: int = 8, int8: bool = False) -> Path:
    """An engine of ``folder`` that runs here: ``model.engine`` when it matches this device, else
    the one built here on first use, built now (strongly typed, from ``model.fp16.onnx``) if absent.
    ``int8``: the same for ``model.int8.engine``, from ``model.int8.onnx``.

    Raises:
        TensorRTUnavailable: no tensorrt, cuda-python or GPU here.
        ConfigError: the folder has no engine that fits and no ONNX file to build one from.
    """
    trt = require_tensorrt()
    gpu = gpu_info()
    tag = device_tag(trt.__version__, gpu)
    name = RUN_MODES[_mode(int8)].runs
    candidates = [folder / name, folder / f"{name}.{tag}"]
    for engine in candidates:
        if engine.is_file():
            match = engine_matches(engine, trt.__version__, gpu)
            if match.ok:
                return engine
            log(f"{engine.name} does not fit this device ({match.reason})")
    cached = candidates[1]
    source = onnx_source(folder, int8)
    log(f"building a TensorRT engine for this device from {source.name} into {cached.name} "
        "(first use; a few minutes, reused afterwards) …")
    build_engine(source, cached, read_onnx_props(source),
                 BuildOptions(batch=(1, 1, batch), timing_cache=folder / TIMING_CACHE), log)
    return cached


def build_for(model: str | Path, out: Path | None, options: BuildOptions, int8: bool = False,
              overwrite: bool = False, log: Log = print) -> Path:
    """``glcf engine build``: the engine of an ONNX file or export folder, with its sidecar and
    the timing cache beside it (``out`` default: ``model.engine`` next to the ONNX file).

    Raises:
        ConfigError: nothing to build from, or ``out`` exists and ``overwrite`` is not set.
        TensorRTUnavailable / GlcfError: see ``build_engine``.
    """
    source = onnx_source(model, int8)
    engine = Path(out) if out is not None else source.parent / ENGINE_FILE
    if engine.exists() and not overwrite:
        raise ConfigError(f"{engine} already exists; pass --overwrite to replace it (and "
                          f"{sidecar_path(engine).name}), or choose another --out")
    if options.timing_cache is None:
        options = replace(options, timing_cache=engine.parent / TIMING_CACHE)
    build_engine(source, engine, read_onnx_props(source), options, log)
    return engine
