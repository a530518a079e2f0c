"""Inference backends behind one ``Runner`` interface, picked from one explicit table.

| file            | backend      | runner                                             |
|-----------------|--------------|----------------------------------------------------|
| ``.onnx``       | onnxruntime  | ``OnnxRuntimeRunner`` (CPU, CUDA or TensorRT EP)   |
| ``.engine``     | tensorrt     | ``TensorRTRunner`` (native TensorRT 10)            |
| ``.plan``       | tensorrt     | ``TensorRTRunner``                                 |
| ``.onnx``       | openvino     | ``OpenVinoRunner`` (CPU; FP32, BF16, INT8 QDQ)     |

A folder (``glcf export --out DIR``) means ``model.engine`` if the folder has one, else
``model.onnx``; with ``backend`` given, that backend's file. ``model.fp16.onnx`` and
``model.int8.onnx`` are never picked implicitly: name them to run them. ``auto`` (the CLI's
default) picks the fastest backend and precision that passed the export's checks (``auto``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from glcf_runtime.backends.auto import BackendChoice, choose_for_file, choose_for_folder
from glcf_runtime.backends.base import Runner, ThresholdChoice
from glcf_runtime.backends.onnxruntime import OnnxRuntimeRunner
from glcf_runtime.backends.openvino import OpenVinoRunner
from glcf_runtime.backends.tensorrt.runner import TensorRTRunner
from glcf_runtime.errors import ConfigError


class Backend(str, Enum):
    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"
    OPENVINO = "openvino"
    AUTO = "auto"  # see choose_backend


BACKEND_BY_SUFFIX = {
    ".onnx": Backend.ONNXRUNTIME,
    ".engine": Backend.TENSORRT,
    ".plan": Backend.TENSORRT,
}
RUNNERS: dict[Backend, type[Runner]] = {
    Backend.ONNXRUNTIME: OnnxRuntimeRunner,
    Backend.TENSORRT: TensorRTRunner,
    Backend.OPENVINO: OpenVinoRunner,
}
FOLDER_FILES = {
    Backend.TENSORRT: "model.engine",
    Backend.ONNXRUNTIME: "model.onnx",
    Backend.OPENVINO: "model.onnx",
}  # order: preference
OPTIONS = {  # the options each runner takes
    Backend.ONNXRUNTIME: {"providers", "threads", "optimization", "spinning"},
    Backend.OPENVINO: {"precision", "threads", "cache"},
    Backend.TENSORRT: set(),
}


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
    if wanted is Backend.AUTO:
        choice = choose_backend(path)
        return resolve_artifact(choice.path, choice.backend)
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
    if wanted is Backend.OPENVINO and by_suffix is Backend.ONNXRUNTIME:
        return path, Backend.OPENVINO
    if wanted is not None and wanted is not by_suffix:
        raise ConfigError(
            f"{path} is a {by_suffix.value} file and cannot run on {wanted.value} "
            f"({_table()}); for TensorRT on an ONNX file use --backend onnxruntime "
            "--provider tensorrt"
        )
    return path, by_suffix


def _name(backend: str | Backend | None) -> str | None:
    """``Backend.TENSORRT`` or ``"tensorrt"`` → ``"tensorrt"``; None stays None."""
    return None if backend is None else str(getattr(backend, "value", backend))


def choose_backend(path: str | Path, backend: str | Backend | None = Backend.AUTO,
                   **options: Any) -> BackendChoice:
    """The backend, file and options ``open_runner`` uses, and why (printed by ``glcf inspect``).

    ``auto``: ONNX Runtime when ONNX Runtime options (``providers``) are given, else
    ``auto.choose_for_folder`` / ``auto.choose_for_file``. Any other backend: as asked.

    Raises:
        ConfigError: see ``resolve_artifact``.
    """
    path = Path(path)
    value = _name(backend)
    if value != Backend.AUTO.value:
        if path.is_dir() and value == Backend.TENSORRT.value:
            return BackendChoice(path, value, "asked for (--backend tensorrt)")
        file, chosen = resolve_artifact(path, backend)
        why = "from the file type" if backend is None else f"asked for (--backend {value})"
        return BackendChoice(file, chosen.value, why)
    if options.get("providers"):
        file, _ = resolve_artifact(path, Backend.ONNXRUNTIME)
        return BackendChoice(file, Backend.ONNXRUNTIME.value, "ONNX Runtime providers were given")
    if not path.exists():
        raise ConfigError(f"no model at {path}; give model.onnx, model.engine or an export folder")
    return choose_for_folder(path) if path.is_dir() else choose_for_file(path)


def open_runner(path: str | Path, backend: str | Backend | None = None,
                log: Callable[[str], None] | None = None, **options: Any) -> Runner:
    """Open a runner for a model file or export folder.

    Args:
        path: ``model.onnx``, ``model.fp16.onnx``, ``model.engine`` or an export folder.
        backend: ``onnxruntime`` or ``tensorrt``; None: from the file type. ``tensorrt`` on an
            export folder without an engine for this device builds one there on first use
            (``backends.tensorrt.engines.engine_for_folder``) and reuses it afterwards.
        log: progress lines (the engine build); default: this module's logger.
        **options: passed to the runner (``OnnxRuntimeRunner``: providers, threads, optimization).

    Raises:
        ConfigError: see ``resolve_artifact``, or options the backend does not take.
        TensorRTUnavailable: an engine is needed and TensorRT or a GPU is missing.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if _name(backend) == Backend.AUTO.value:
        choice = choose_backend(path, backend, **options)
        (log or logging.getLogger(__name__).info)(f"--backend auto: {choice.describe()}")
        dropped = set(options) - OPTIONS[Backend(choice.backend)]
        if dropped:
            (log or logging.getLogger(__name__).warning)(
                f"{', '.join(sorted(dropped))} ignored: {choice.backend} does not take them")
        path, backend = choice.path, choice.backend
        options = {**choice.options, **{k: v for k, v in options.items() if k not in dropped}}
    if Path(path).is_dir() and _name(backend) == Backend.TENSORRT.value:
        from glcf_runtime.backends.tensorrt.engines import engine_for_folder

        path = engine_for_folder(Path(path), log or logging.getLogger(__name__).warning)
    file, chosen = resolve_artifact(path, backend)
    if chosen is Backend.TENSORRT and options:
        raise ConfigError(
            f"the native TensorRT backend takes no {', '.join(options)} options; "
            "they are for --backend onnxruntime or openvino"
        )
    unknown = set(options) - OPTIONS[chosen]
    if unknown:
        raise ConfigError(f"--backend {chosen.value} takes no {', '.join(sorted(unknown))} option; "
                          f"it takes {', '.join(sorted(OPTIONS[chosen]))}")
    return RUNNERS[chosen](file, **options)


__all__ = [
    "BACKEND_BY_SUFFIX",
    "Backend",
    "BackendChoice",
    "OnnxRuntimeRunner",
    "OpenVinoRunner",
    "Runner",
    "TensorRTRunner",
    "ThresholdChoice",
    "choose_backend",
    "open_runner",
    "resolve_artifact",
]
