"""The deployment chain on the `edge` preset: EfficientNet-Lite0 Φ_L with its ImageNet weights from
the offline wheel, folded into the one fused graph (FP32 parity, mixed FP16, TensorRT 10's ops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from calibration.settings import CalibrationSettings
from glcf_export.export import ExportOptions, export_run
from glcf_export.trt_ops import op_report
from glcf_runtime.backends import open_runner
from glcf_runtime.metadata import read_metadata
from glcf_runtime.preprocess import PreprocessSpec
from glcf_train.builder import load_run
from glcf_train.calibrate import calibrate_run, scorer_for
from glcf_train.config import preset, with_train
from glcf_train.data.datasets import load_images, read_split
from glcf_train.model.weights import WHEELS
from glcf_train.train import TrainOptions, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def edge_export(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> tuple[Path, Path]:
    run = tmp_path_factory.mktemp("edge") / "run"
    cfg = with_train(preset("edge"), steps=30, batch_size=4)
    train(TrainOptions(out=run, data=synth_root, category="breakfast_tray", config=cfg,
                       progress=False))
    calibrate_run(run, CalibrationSettings(device="cpu"), progress=False)
    out = run / "export"
    export_run(run, ExportOptions(out, batch=4, int8=False), log=lambda _: None)
    return run, out


def test_edge_graph_holds_the_contract_and_names_its_weights(edge_export: tuple[Path, Path]) -> None:
    _, out = edge_export
    for name, precision in (("model.onnx", "fp32"), ("model.fp16.onnx", "fp16-mixed")):
        model = onnx.load(str(out / name))
        onnx.checker.check_model(model, full_check=True)
        meta = read_metadata(model, name)
        assert meta.preset == "edge" and meta.precision == precision
        assert meta.extra["backbone"] == "efficientnet_lite0"
        assert meta.extra["weights"] == f"wheel:{WHEELS[preset('edge').model.backbone.kind][0]}"
        assert meta.extra["weights_sha256"].startswith("579344248a93")
        assert op_report(model).ok, op_report(model)


def test_edge_graph_matches_the_torch_reference(edge_export: tuple[Path, Path],
                                                synth_root: Path) -> None:
    import torch

    run, out = edge_export
    model, cfg, _ = load_run(run)
    scorer, _ = scorer_for(run, cfg)
    samples = read_split(synth_root, "breakfast_tray", "test")[:4]
    images = load_images(samples, PreprocessSpec(224, 224))
    with torch.no_grad():
        ref_maps, ref_scores = scorer(model(torch.from_numpy(images)))
    with open_runner(out / "model.onnx") as runner:
        maps, scores = runner.infer(images)
    span = float(ref_maps.max() - ref_maps.min())
    assert np.abs(maps - ref_maps.numpy()).max() / span < 1e-4
    np.testing.assert_allclose(scores, ref_scores.numpy(), rtol=1e-4)


def test_edge_int8_file_keeps_the_depthwise_convolutions_float(edge_export: tuple[Path, Path],
                                                                synth_root: Path, tmp_path: Path) -> None:
    """EfficientNet-Lite's depthwise convolutions stay FP32 in the INT8 file (OpenVINO's INT8
    kernel for them strays from ONNX Runtime's); its ordinary convolutions are quantized."""
    from glcf_export.quantize import quantize_int8

    _, out = edge_export
    frames = load_images(read_split(synth_root, "breakfast_tray", "train")[:4], PreprocessSpec(224, 224))
    meta = read_metadata(onnx.load(str(out / "model.onnx")), "model.onnx")
    model = quantize_int8(out / "model.onnx", tmp_path / "model.int8.onnx", frames, meta)
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    grouped = [n for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    plain = [n for n in convs if n not in grouped]
    assert grouped and plain
    assert all(producer.get(i) != "DequantizeLinear" for n in grouped for i in n.input[:2])
    assert all(producer.get(n.input[0]) == producer.get(n.input[1]) == "DequantizeLinear" for n in plain)
    assert op_report(model).ok
