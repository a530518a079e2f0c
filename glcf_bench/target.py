"""The model under test (:class:`BenchTarget`) and the contract of an export folder.

Both kinds of target use it: an export folder (``targets``, the runtime alone) and the models the
benchmark exports itself (``torch_targets``, with torch), so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glcf_runtime.artifacts import ENGINE_FILE, FP16_FILE, FP32_FILE
from glcf_runtime.backends.tensorrt.sidecar import read_sidecar
from glcf_runtime.metadata import ArtifactMetadata, read_onnx_props

Log = Callable[[str], None]


@dataclass
class BenchTarget:
    """The model under test.

    Attributes:
        folder: export folder holding model.onnx / model.fp16.onnx (/ model.engine).
        description: what was loaded, for the report.
        metadata: the artifact contract (input size, threshold, precision).
        deploy: the torch module the ``torch`` backend runs when a torch model is at hand, else
            None: the model's own modules as trained (timm's Swin blocks) and the reference
            scorer, with the same uint8 input as the graph (``torch_targets.torch_module``).
        no_torch: why ``deploy`` is None.
        temporary: ``folder`` was made by the benchmark (an engine may be built into it).
        export_seconds: export stage times when the benchmark exported the model.
    """

    folder: Path
    description: str
    metadata: ArtifactMetadata
    deploy: Any = None  # a torch nn.Module
    no_torch: str = ""
    temporary: bool = False
    export_seconds: dict[str, float] = field(default_factory=dict)


def folder_metadata(folder: Path) -> ArtifactMetadata:
    """The contract of an export folder, from its first ONNX file or the engine's sidecar."""
    for name in (FP32_FILE, FP16_FILE):
        if (folder / name).is_file():
            return ArtifactMetadata.from_props(read_onnx_props(folder / name), str(folder / name))
    engine = folder / ENGINE_FILE
    return ArtifactMetadata.from_props(read_sidecar(engine), str(engine))
