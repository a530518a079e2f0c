"""Inference backends behind one ``Runner`` interface, picked from one explicit table.

| file            | backend      | runner                                             |
|-----------------|--------------|----------------------------------------------------|
| ``.onnx``       | onnxruntime  | ``OnnxRuntimeRunner`` (CPU, CUDA or TensorRT EP)   |
| ``.engine``     | tensorrt     | ``TensorRTRunner`` (native TensorRT 10)            |
| ``.plan``       | tensorrt     | ``TensorRTRunner``                                 |
| ``.onnx``       | openvino     | ``OpenVinoRunner`` (CPU; FP32, BF16, INT8 QDQ)     |

A folder (``glcf export --out DIR``) means ``model.engine`` if the folder has one, else
``model.onnx``; with ``backend`` given, that backend's file. ``model.fp16.onnx`` and
``model.int8.onnx`` are never picked implicitly: name them, or name their run mode
(``glcf_runtime.artifacts.RUN_MODES``: ``--backend openvino-int8-bf16`` is ``model.int8.onnx`` on
OpenVINO in BF16). ``auto`` (the CLI's default) picks the fastest run mode that passed the
export's checks (``auto``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glcf_runtime.artifacts import (
    ENGINE_FILE,
    FP32_FILE,
    INT8_FILE,
    MODE_NAMES,
    RUN_MODES,
    Backend,
)
from glcf_runtime.backends.auto import (
    BackendChoice,
    choose_for_file,
    choose_for_folder,
    mode_choice,
)
from glcf_runtime.backends.base import Runner
from glcf_runtime.backends.onnxruntime import OnnxRuntimeRunner
from glcf_runtime.backends.openvino import OpenVinoRunner
from glcf_runtime.backends.tensorrt.runner import TensorRTRunner
from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import CHECKS_KEY

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
FOLDER_FILES = {  # order: preference
    Backend.TENSORRT: RUN_MODES["tensorrt"].runs,
    Backend.ONNXRUNTIME: RUN_MODES["onnxruntime"].file,
    Backend.OPENVINO: RUN_MODES["openvino"].file,
}
OPTIONS = {  # the options each runner takes
    Backend.ONNXRUNTIME: {"providers", "threads", "optimization", "spinning", "streams"},
    Backend.OPENVINO: {"precision", "threads", "cache", "streams"},
    Backend.TENSORRT: set(),
}
NO_MODEL = f"give {FP32_FILE}, {ENGINE_FILE} or an export folder"


def _table() -> str:
    return ", ".join(f"{suffix} → {backend.value}" for suffix, backend in BACKEND_BY_SUFFIX.items())


def parse_backend(backend: str | Backend | None) -> tuple[Backend | None, str | None]:
    """A ``--backend`` value as (backend, run mode): a backend name, or a run mode name that is
    not one (``openvino-int8-bf16``: OpenVINO and that mode); None: (None, None).

    Raises:
        ConfigError: neither.
    """
    if backend is None:
        return None, None
    try:
        return Backend(backend), None
    except ValueError:
        pass
    if backend in MODE_NAMES:
        return RUN_MODES[str(backend)].backend, str(backend)
    raise ConfigError(f"backend {backend!r}: choose {', '.join(b.value for b in Backend)}, or a "
                      f"run mode of an export folder: {', '.join(MODE_NAMES)}")


def resolve_artifact(
    path: str | Path, backend: str | Backend | None = None
) -> tuple[Path, Backend]:
    """The artifact file and backend for a file or export folder (see the module docstring).

    Raises:
        ConfigError: missing path, unknown suffix or backend, or a file the backend cannot run.
    """
    path = Path(path)
    wanted, mode = parse_backend(backend)
    if mode is not None or wanted is Backend.AUTO:  # a file of the export folder: choose it
        choice = choose_backend(path, backend)
        file = choice.path / RUN_MODES[choice.mode or "tensorrt"].runs if choice.path.is_dir() \
            else choice.path
        return resolve_artifact(file, choice.backend)
    if path.is_dir():
        for candidate, name in FOLDER_FILES.items():
            if (wanted in (None, candidate)) and (path / name).is_file():
                return path / name, candidate
        names = [FOLDER_FILES[wanted]] if wanted else list(FOLDER_FILES.values())
        raise ConfigError(
            f"{path} holds no {' or '.join(names)}; give a folder written by "
            f"glcf export (add --trt for {ENGINE_FILE}) or a model file"
        )
    if not path.is_file():
        raise ConfigError(f"no model at {path}; {NO_MODEL}")
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


def choose_backend(path: str | Path, backend: str | Backend | None = Backend.AUTO,
                   **options: Any) -> BackendChoice:
    """The backend, file and options ``open_runner`` uses, and why (printed by ``glcf inspect``).

    ``auto``: ONNX Runtime when ONNX Runtime options (``providers``) are given, else
    ``auto.choose_for_folder`` / ``auto.choose_for_file``. A run mode: its file and precision.
    Any other backend: as asked; ``mode`` names the run mode that is (``run_mode_of``).

    Raises:
        ConfigError: see ``resolve_artifact``, or a run mode whose file is not there.
    """
    from glcf_runtime.artifacts import run_mode_of

    path = Path(path)
    wanted, mode = parse_backend(backend)
    if mode is not None:
        return _mode_choice(path, mode)
    if wanted is not Backend.AUTO:
        if path.is_dir() and wanted is Backend.TENSORRT:
            return BackendChoice(path, wanted, "asked for (--backend tensorrt)", mode="tensorrt")
        file, chosen = resolve_artifact(path, wanted)
        why = "from the file type" if wanted is None else f"asked for (--backend {wanted.value})"
        precision = options.get("precision") if chosen is Backend.OPENVINO else None
        return BackendChoice(file, chosen, why, mode=run_mode_of(chosen, file.name, precision))
    if options.get("providers"):
        file, _ = resolve_artifact(path, Backend.ONNXRUNTIME)
        return BackendChoice(file, Backend.ONNXRUNTIME, "ONNX Runtime providers were given",
                             mode=run_mode_of(Backend.ONNXRUNTIME, file.name))
    if not path.exists():
        raise ConfigError(f"no model at {path}; {NO_MODEL}")
    if path.is_dir():
        return choose_for_folder(path)
    resolve_artifact(path)  # a file type the table knows
    return choose_for_file(path)


def _mode_choice(path: Path, name: str) -> BackendChoice:
    """Run mode ``name`` on an export folder, or on its own file (TensorRT: on an engine)."""
    mode = RUN_MODES[name]
    why = f"asked for (--backend {name})"
    if path.is_dir():
        if mode.backend is not Backend.TENSORRT and not (path / mode.file).is_file():
            how = " --int8" if mode.file == INT8_FILE else ""
            raise ConfigError(f"{path} holds no {mode.file}, which --backend {name} runs; export "
                              f"it with glcf export RUN --out DIR{how}")
        return mode_choice(path, name, why)
    if not path.is_file():
        raise ConfigError(f"no model at {path}; give the export folder that --backend {name} runs")
    if path.name != mode.runs:
        raise ConfigError(f"{path.name} is not {mode.runs}, which --backend {name} runs; give "
                          f"{mode.runs} or its export folder, or --backend {mode.backend.value}")
    choice = mode_choice(path.parent, name, why)
    return BackendChoice(path, choice.backend, why, choice.options, name)


def open_runner(path: str | Path, backend: str | Backend | None = None,
                log: Callable[[str], None] | None = None, **options: Any) -> Runner:
    """Open a runner for a model file or export folder.

    Args:
        path: ``model.onnx``, ``model.fp16.onnx``, ``model.engine`` or an export folder.
        backend: ``onnxruntime``, ``openvino``, ``tensorrt``, ``auto`` or a run mode
            (``glcf_runtime.artifacts.RUN_MODES``); None: from the file type. TensorRT on an
            export folder without an engine for this device builds one there on first use
            (``backends.tensorrt.engines.engine_for_folder``) and reuses it afterwards.
        log: progress lines (the engine build); default: this module's logger.
        **options: passed to the runner (``OnnxRuntimeRunner``: providers, threads, optimization).

    Raises:
        ConfigError: see ``resolve_artifact``, options the backend does not take, or a precision
            other than the run mode's.
        TensorRTUnavailable: an engine is needed and TensorRT or a GPU is missing.
    """
    options = {k: v for k, v in options.items() if v is not None}
    wanted, mode = parse_backend(backend)
    choice = choose_backend(path, backend, **options)  # the final file, backend and options
    if wanted is Backend.AUTO:
        (log or logging.getLogger(__name__).info)(f"--backend auto: {choice.describe()}")
        dropped = set(options) - OPTIONS[choice.backend]
        if dropped:
            (log or logging.getLogger(__name__).warning)(
                f"{', '.join(sorted(dropped))} ignored: {choice.backend.value} does not take them")
        options = {k: v for k, v in options.items() if k not in dropped}
    elif mode is not None:
        asked, runs = options.get("precision"), choice.options.get("precision")
        if asked is not None and runs is not None and asked != runs:
            raise ConfigError(f"--backend {mode} runs in {runs}; drop --precision {asked}, or give "
                              f"--backend {choice.backend.value} --precision {asked}")
    options = {**choice.options, **options}
    file, chosen = choice.path, choice.backend
    if file.is_dir() and chosen is Backend.TENSORRT:  # its engine: found, or built on first use
        from glcf_runtime.backends.tensorrt.engines import engine_for_folder

        int8 = RUN_MODES[choice.mode or "tensorrt"].file == INT8_FILE
        file = engine_for_folder(file, log or logging.getLogger(__name__).warning, int8=int8)
    if chosen is Backend.TENSORRT and options:
        raise ConfigError(
            f"the native TensorRT backend takes no {', '.join(options)} options; "
            "they are for --backend onnxruntime or openvino"
        )
    unknown = set(options) - OPTIONS[chosen]
    if unknown:
        raise ConfigError(f"--backend {chosen.value} takes no {', '.join(sorted(unknown))} option; "
                          f"it takes {', '.join(sorted(OPTIONS[chosen]))}")
    runner = RUNNERS[chosen](file, **options)
    checks = str(runner.metadata.extra.get(CHECKS_KEY, ""))
    if checks.startswith("pending"):  # left by an export that stopped before its checks passed
        runner.close()
        raise ConfigError(f"{file}: {checks}. The export that wrote it stopped before its checks "
                          "passed; export again (glcf export RUN --out DIR), which replaces it")
    return runner


__all__ = [
    "BACKEND_BY_SUFFIX",
    "Backend",
    "BackendChoice",
    "OnnxRuntimeRunner",
    "OpenVinoRunner",
    "Runner",
    "TensorRTRunner",
    "choose_backend",
    "open_runner",
    "parse_backend",
    "resolve_artifact",
]
