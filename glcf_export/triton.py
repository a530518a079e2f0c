"""A Triton Inference Server model repository for the fused graph (DESIGN §4).

Layout (Triton "Model Repository" and "Model Configuration" docs)::

    repo/<model_name>/config.pbtxt
    repo/<model_name>/1/model.onnx     ONNX Runtime backend, platform "onnxruntime_onnx", GPU or CPU
    repo/<model_name>/1/model.plan     TensorRT backend, platform "tensorrt_plan" (when an engine
                                       is given; the ONNX file is then not copied: nothing reads it)

Names, data types and shapes in ``config.pbtxt`` are read from the ONNX graph. ``dims`` leave out
the batch axis; Triton forbids empty ``dims``, so the per-image ``score`` ([B] in the graph) is
declared ``dims: [ 1 ]`` with ``reshape: { shape: [ ] }``, as that page prescribes.
"""

from __future__ import annotations

import json
import os
import shutil
from enum import Enum
from pathlib import Path

import onnx
from onnx import TensorProto

from glcf_runtime.artifacts import TRITON_FILES
from glcf_runtime.backends.tensorrt.sidecar import sidecar_path
from glcf_runtime.errors import ConfigError, GlcfError

TRITON_TYPES = {
    TensorProto.UINT8: "TYPE_UINT8",
    TensorProto.INT8: "TYPE_INT8",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.BOOL: "TYPE_BOOL",
    TensorProto.FLOAT16: "TYPE_FP16",
    TensorProto.BFLOAT16: "TYPE_BF16",
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.DOUBLE: "TYPE_FP64",
}
# Dynamic batching waits at most this long to fill a batch: well under a frame at 30 fps.
MAX_QUEUE_DELAY_US = 2000


class TritonDevice(str, Enum):
    """Where Triton runs the model instances (``instance_group.kind``)."""

    GPU = "gpu"  # KIND_GPU: the TensorRT plan, or ONNX Runtime with CUDA
    CPU = "cpu"  # KIND_CPU: ONNX Runtime on a CPU-only Triton


def write_triton_repository(
    repo: Path,
    onnx_path: Path,
    engine_path: Path | None,
    max_batch: int,
    model_name: str = "glcf",
    overwrite: bool = False,
    device: TritonDevice | str = TritonDevice.GPU,
) -> Path:
    """Write ``repo/<model_name>`` serving the TensorRT engine when one is given (GPU only), else
    the ONNX file on ``device``. ``onnx_path`` also gives the tensor names, types and shapes.

    The model folder is assembled under a temporary name and renamed into place.
    Returns the model folder.

    Raises:
        GlcfError: the model folder exists and ``overwrite`` is False.
        ConfigError: bad ``max_batch``, model name or device, a graph without a dynamic batch
            axis, an engine for a CPU device, or an engine whose optimisation profile stops below
            ``max_batch``.
    """
    repo, onnx_path = Path(repo), Path(onnx_path)
    device = check_triton_device(device, engine_path is not None)
    if max_batch < 1:
        raise ConfigError(f"max_batch must be at least 1, got {max_batch}")
    if not model_name or model_name != Path(model_name).name or model_name.startswith("."):
        raise ConfigError(f"model name {model_name!r} must be a plain folder name")
    if not onnx_path.is_file():
        raise ConfigError(f"ONNX file {onnx_path} does not exist; export one first (glcf export)")
    folder = repo / model_name
    if folder.exists() and not overwrite:
        raise GlcfError(
            f"Triton model folder {folder} already exists; pass overwrite=True "
            "(--overwrite) to replace it, or choose another model name"
        )
    model = onnx.load(str(onnx_path), load_external_data=False)
    if engine_path is not None:
        _check_engine_batch(Path(engine_path), max_batch)
    platform = "onnxruntime_onnx" if engine_path is None else "tensorrt_plan"
    source = onnx_path.name if engine_path is None else Path(engine_path).name
    text = config_pbtxt(model, model_name, platform, max_batch, source=source, device=device)
    external = _external_data_files(model) if engine_path is None else []
    tmp = repo / f".{model_name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "1").mkdir(parents=True)
        (tmp / "config.pbtxt").write_text(text, encoding="utf-8")
        shutil.copyfile(onnx_path if engine_path is None else engine_path,
                        tmp / "1" / TRITON_FILES[platform])
        for name in external:
            (tmp / "1" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(onnx_path.parent / name, tmp / "1" / name)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def check_triton_device(device: TritonDevice | str, engine: bool) -> TritonDevice:
    """The device as an enum.

    Raises:
        ConfigError: an unknown device, or a TensorRT engine for a CPU-only Triton.
    """
    try:
        device = TritonDevice(device)
    except ValueError:
        raise ConfigError(f"Triton device {device!r}: choose gpu or cpu") from None
    if engine and device is TritonDevice.CPU:
        raise ConfigError("a TensorRT engine runs only on a GPU: write the repository for "
                          "--triton-device cpu without --trt (it then serves model.onnx)")
    return device


def config_pbtxt(
    model: onnx.ModelProto, name: str, platform: str, max_batch: int, source: str = "",
    device: TritonDevice = TritonDevice.GPU,
) -> str:
    """``config.pbtxt`` text for ``model`` served with dynamic batching on one instance."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [_tensor_entry(v) for v in model.graph.input if v.name not in weights]
    outputs = [_tensor_entry(v) for v in model.graph.output]
    preferred = sorted({max(1, max_batch // 2), max_batch})
    lines = [
        f"# Written by glcf from {source}." if source else "# Written by glcf.",
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch}",
        "input [",
        ",\n".join(inputs),
        "]",
        "output [",
        ",\n".join(outputs),
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
        f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}",
        "}",
        "instance_group [",
        "  {",
        f"    kind: KIND_{device.name}",
        "    count: 1",
        "  }",
        "]",
    ]
    return "\n".join(lines) + "\n"


def _tensor_entry(value: onnx.ValueInfoProto) -> str:
    """One ``input``/``output`` entry: dims without the (dynamic) batch axis."""
    tensor = value.type.tensor_type
    if tensor.elem_type not in TRITON_TYPES:
        type_name = onnx.helper.tensor_dtype_to_string(tensor.elem_type)
        raise ConfigError(f"tensor {value.name!r} has type {type_name}, which Triton cannot serve")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    if not dims or dims[0] != -1:
        raise ConfigError(
            f"tensor {value.name!r} has shape {dims}: its first axis must be a dynamic batch axis "
            "for Triton's batching; re-export with a dynamic batch"
        )
    entry = [f'    name: "{value.name}"', f"    data_type: {TRITON_TYPES[tensor.elem_type]}"]
    if len(dims) == 1:  # [B] in the graph: Triton needs non-empty dims
        entry += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    else:
        entry.append(f"    dims: [ {', '.join(map(str, dims[1:]))} ]")
    return "  {\n" + "\n".join(entry) + "\n  }"


def _check_engine_batch(engine_path: Path, max_batch: int) -> None:
    """Where the engine's sidecar records its profile, ``max_batch`` must lie within it."""
    if not engine_path.is_file():
        raise ConfigError(f"TensorRT engine {engine_path} does not exist")
    sidecar = sidecar_path(engine_path)
    if not sidecar.is_file():
        return  # an engine built elsewhere: Triton itself checks the profile when it loads
    profile = json.loads(sidecar.read_text(encoding="utf-8")).get("profile") or {}
    for name, shapes in profile.items():
        if shapes["max"][0] < max_batch:
            raise ConfigError(
                f"engine {engine_path} takes batches of at most {shapes['max'][0]} on input "
                f"{name!r} (see {sidecar.name}); use max_batch <= {shapes['max'][0]} or rebuild "
                "the engine with a larger profile"
            )


def _external_data_files(model: onnx.ModelProto) -> list[str]:
    """Relative paths of the files holding the model's external initializers."""
    files = set()
    for init in model.graph.initializer:
        if init.data_location == TensorProto.EXTERNAL:
            files.update(e.value for e in init.external_data if e.key == "location")
    for name in files:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ConfigError(f"external data location {name!r} is not beside the ONNX file")
    return sorted(files)
