"""A tiny model with the deploy contract (DESIGN §4), built with onnx.helper in milliseconds.

``image`` uint8 ``[batch, 64, 64, 3]`` → ``anomaly_map`` = channel mean of ``|x − 128| / 128``
(float32 ``[batch, 64, 64]``) and ``score`` = max of the map (float32 ``[batch]``). A grey frame
scores 0, a frame with a white patch scores about 1.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

from glcf_runtime.metadata import INPUT_NAME, MAP_NAME, SCORE_NAME, ArtifactMetadata

SIZE = 64
THRESHOLD = 0.5


def contract_metadata(**changes: object) -> ArtifactMetadata:
    fields = dict(
        height=SIZE,
        width=SIZE,
        branch_mode="both",
        score_rule="max",
        threshold=THRESHOLD,
        threshold_rule="normal_quantile",
        map_range=(0.0, 1.0),
        fusion={},
        category="test",
        config_hash="cafe",
        preset="tiny",
    )
    return ArtifactMetadata(**{**fields, **changes})


def contract_model(
    metadata: ArtifactMetadata | None = None, batch: int | str = "batch"
) -> onnx.ModelProto:
    """The model; ``metadata=None`` gives a foreign model without GLCF metadata props."""
    const = lambda name, value: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=helper.make_tensor(name, TensorProto.FLOAT, [], [value])
    )
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["x"], to=TensorProto.FLOAT),
        const("c128", 128.0),
        helper.make_node("Sub", ["x", "c128"], ["centred"]),
        helper.make_node("Abs", ["centred"], ["dist"]),
        helper.make_node("Div", ["dist", "c128"], ["scaled"]),
        helper.make_node("ReduceMean", ["scaled"], [MAP_NAME], axes=[-1], keepdims=0),
        helper.make_node("ReduceMax", [MAP_NAME], [SCORE_NAME], axes=[1, 2], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "glcf_contract",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [batch, SIZE, SIZE, 3])],
        [
            helper.make_tensor_value_info(MAP_NAME, TensorProto.FLOAT, [batch, SIZE, SIZE]),
            helper.make_tensor_value_info(SCORE_NAME, TensorProto.FLOAT, [batch]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, metadata.to_props())
    onnx.checker.check_model(model)
    return model


def write_model(
    folder: Path,
    metadata: ArtifactMetadata | None = None,
    name: str = "model.onnx",
    batch: int | str = "batch",
) -> Path:
    """Save the model into ``folder`` (created) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    onnx.save(
        contract_model(contract_metadata() if metadata is None else metadata, batch), str(path)
    )
    return path


def frame(anomalous: bool = False, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """uint8 BGR ``[size, size, 3]``: grey with noise of amplitude 4 + seed % 5 (score
    ``amplitude / 128``); a white square (score ≈ 1) when anomalous."""
    rng = np.random.default_rng(seed)
    amplitude = 4 + seed % 5
    image = (128 + rng.integers(-amplitude, amplitude + 1, (size, size, 3))).astype(np.uint8)
    if anomalous:
        image[size // 4 : size // 2, size // 4 : size // 2] = 255
    return image


def write_images(folder: Path, pattern: list[bool], size: int = SIZE) -> list[Path]:
    """PNG per entry of ``pattern`` (True: anomalous), named 000.png, 001.png, …"""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, bad in enumerate(pattern):
        path = folder / f"{i:03d}.png"
        cv2.imwrite(str(path), frame(bad, size, seed=i))
        paths.append(path)
    return paths


def write_video(path: Path, pattern: list[bool], size: int = SIZE, fps: float = 10.0) -> Path:
    """MJPG ``.avi`` with one frame per entry of ``pattern`` (True: anomalous)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i, bad in enumerate(pattern):
        writer.write(frame(bad, size, seed=i))
    writer.release()
    return path
