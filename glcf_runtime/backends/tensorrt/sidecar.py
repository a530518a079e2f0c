"""The JSON sidecar an engine is saved with: ``model.engine`` → ``model.engine.json``.

It carries the artifact's metadata props plus the build's facts (TensorRT version, GPU, compute
capability, profile, the ONNX file's hash); the builder writes it and the runner reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glcf_runtime.metadata import MetadataError

REBUILD = "glcf engine build MODEL_DIR (or glcf export RUN --out DIR --trt)"


def sidecar_path(engine: Path) -> Path:
    """``model.engine`` → ``model.engine.json``."""
    return engine.with_name(engine.name + ".json")


def read_sidecar(engine: Path) -> dict[str, Any]:
    """The engine's sidecar as a dict.

    Raises:
        MetadataError: no sidecar, or one that is not a JSON object.
    """
    file = sidecar_path(engine)
    if not file.is_file():
        raise MetadataError(
            f"{engine} has no sidecar {file.name} with its metadata; rebuild the "
            f"engine on this device with {REBUILD}"
        )
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{file} cannot be read ({exc}); rebuild with {REBUILD}") from None
    if not isinstance(data, dict):
        raise MetadataError(f"{file} is not a JSON object; rebuild with {REBUILD}")
    return data
