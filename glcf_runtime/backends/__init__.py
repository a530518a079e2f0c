"""Inference backends behind one ``Runner`` interface, picked from one explicit table.

| file            | backend      | runner                                             |
|-----------------|--------------|----------------------------------------------------|
| ``.onnx``       | onnxruntime  | ``OnnxRuntimeRunner`` (CPU, CUDA or TensorRT EP)   |
| ``.engine``     | tensorrt     | ``TensorRTRunner`` (native TensorRT 10)            |
| ``.plan``       | tensorrt     | ``TensorRTRunner``                                 |

A folder (``glcf export --out DIR``) means ``model.engine`` if the folder has one, else
``model.onnx``; with ``backend`` given, that backend's file. ``model.fp16.onnx`` is never picked
implicitly: name it to run it.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from glcf_runtime.backends.base import Runner, ThresholdChoice
from glcf_runtime.backends.onnxruntime import OnnxRuntimeRunner
from glcf_runtime.backends.tensorrt.runner import TensorRTRunner
from glcf_runtime.errors import ConfigError


class Backend(str, Enum):
    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"


BACKEND_BY_SUFFIX = {
    ".onnx": Backend.ONNXRUNTIME,
    ".engine": Backend.TENSORRT,
    ".plan": Backend.TENSORRT,
}
RUNNERS: dict[Backend, type[Runner]] = {
    Backend.ONNXRUNTIME: OnnxRuntimeRunner,
    Backend.TENSORRT: TensorRTRunner,
}
FOLDER_FILES = {
    Backend.TENSORRT: "model.engine",
    Backend.ONNXRUNTIME: "model.onnx",
}  # order: preference


def _table() -> str:
    return ", ".join(f"{suffix} → {backend.value}" for suffix, backend in BACKEND_BY_SUFFIX.items())


def resolve_artifact(
    path: str | Path, backend: str | Backend | None = None
) -> tuple[Path, Backend]:
    """The artifact file and backend for a file or export folder (see the module docstring).

    Raises:
        ConfigError: missing path, unknown suffix or backend, or a file the backend cannot run.
    """
    path = Path(path)
    try:
        wanted = None if backend is None else Backend(backend)
    except ValueError:
        raise ConfigError(
            f"backend {backend!r}: choose {', '.join(b.value for b in Backend)}"
        ) from None
    if path.is_dir():
        for candidate, name in FOLDER_FILES.items():
            if (wanted in (None, candidate)) and (path / name).is_file():
                return path / name, candidate
        names = [FOLDER_FILES[wanted]] if wanted else list(FOLDER_FILES.values())
        raise ConfigError(
            f"{path} holds no {' or '.join(names)}; give a folder written by "
            "glcf export (add --trt for model.engine) or a model file"
        )
    if not path.is_file():
        raise ConfigError(f"no model at {path}; give model.onnx, model.engine or an export folder")
    by_suffix = BACKEND_BY_SUFFIX.get(path.suffix.lower())
    if by_suffix is None:
        raise ConfigError(f"{path}: unknown model file type {path.suffix!r}; known: {_table()}")
    if wanted is not None and wanted is not by_suffix:
        raise ConfigError(
            f"{path} is a {by_suffix.value} file and cannot run on {wanted.value} "
            f"({_table()}); for TensorRT on an ONNX file use --backend onnxruntime "
            "--provider tensorrt"
        )
    return path, by_suffix


def open_runner(path: str | Path, backend: str | Backend | None = None, **options: Any) -> Runner:
    """Open a runner for a model file or export folder.

    Args:
        path: ``model.onnx``, ``model.fp16.onnx``, ``model.engine`` or an export folder.
        backend: ``onnxruntime`` or ``tensorrt``; None: from the file type.
        **options: passed to the runner (``OnnxRuntimeRunner``: providers, threads, optimization).

    Raises:
        ConfigError: see ``resolve_artifact``, or options the backend does not take.
    """
    file, chosen = resolve_artifact(path, backend)
    options = {k: v for k, v in options.items() if v is not None}
    if chosen is Backend.TENSORRT and options:
        raise ConfigError(
            f"the native TensorRT backend takes no {', '.join(options)} options; "
            "they are for --backend onnxruntime"
        )
    return RUNNERS[chosen](file, **options)


__all__ = [
    "BACKEND_BY_SUFFIX",
    "Backend",
    "OnnxRuntimeRunner",
    "Runner",
    "TensorRTRunner",
    "ThresholdChoice",
    "open_runner",
    "resolve_artifact",
]
