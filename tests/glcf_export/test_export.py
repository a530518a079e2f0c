"""`glcf export` on a briefly trained tiny run: contract, parity, pruning, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import glcf_export.checks as checks
import glcf_export.gates as gates_module
from glcf_export.export import ExportOptions, export_run
from glcf_export.gates import FP16_AUROC_TOLERANCE, FP16_GATE
from glcf_export.onnx_export import ExportError
from glcf_export.trt_ops import op_report
from glcf_runtime.artifacts import EXPORT_REPORT, GATES_FILE, INT8_FILE
from glcf_runtime.metadata import read_metadata
from glcf_runtime.preprocess import PreprocessSpec
from glcf_train.builder import load_run
from glcf_train.calibrate import scorer_for
from glcf_train.config import BranchMode
from glcf_train.data.datasets import load_images, read_split


@pytest.fixture(scope="module")
def run(calibrated_run: Path) -> Path:
    return calibrated_run


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifacts") / "models"
    export_run(run, ExportOptions(out, batch=4), log=lambda _: None)
    return out


def _initializer_floats(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def test_contract(exported: Path, run: Path) -> None:
    for name, precision in (("model.onnx", "fp32"), ("model.fp16.onnx", "fp16-mixed")):
        model = onnx.load(str(exported / name))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        (inp,) = model.graph.input
        assert inp.name == "image" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
        assert dims == ["batch", 224, 224, 3]
        outs = {o.name: o.type.tensor_type for o in model.graph.output}
        assert set(outs) == {"anomaly_map", "score"}
        assert all(t.elem_type == onnx.TensorProto.FLOAT for t in outs.values())
        assert [d.dim_param or d.dim_value for d in outs["anomaly_map"].shape.dim] == ["batch", 224, 224]
        meta = read_metadata(model, name)
        calib = json.loads((run / "calibration.json").read_text())
        assert meta.precision == precision and meta.branch_mode == "both" and meta.preset == "tiny"
        assert meta.threshold == pytest.approx(calib["threshold"]["threshold"])
        normal = calib["validation_scores"]  # the range the runtime checks the threshold against
        assert meta.score_range == (min(normal), max(normal)) and min(normal) <= meta.threshold
        assert meta.fusion["stats"] == calib["stats"] and meta.category == "breakfast_tray"
        assert op_report(model).ok


def test_parity_batch_1_and_4(exported: Path, run: Path, synth_root: Path) -> None:
    report = json.loads((exported / "export_report.json").read_text())
    for b in (1, 4):
        assert report["figures"][f"fp32_b{b}_map_err_rel_range"] <= 1e-4
        assert report["figures"][f"fp32_b{b}_score_err_rel"] <= 1e-5
    assert report["figures"]["fp16_spearman"] >= 0.999
    # and independently of the exporter's own check: ONNX Runtime on 4 images at once
    model, cfg, _ = load_run(run)
    scorer, _ = scorer_for(run, cfg)
    images = load_images(read_split(synth_root, "breakfast_tray", "validation"), PreprocessSpec())[:4]
    ref_maps, ref_scores = checks.torch_reference(model, scorer, images)
    with checks.check_runner(exported / "model.onnx") as runner:
        maps, scores = runner.infer(images)
    assert np.abs(maps - ref_maps).max() <= 1e-4 * (ref_maps.max() - ref_maps.min())
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)


def test_a_plain_export_writes_the_gated_int8_file(exported: Path) -> None:
    """No --int8 needed: the default export makes model.int8.onnx from the run's training images
    and publishes it because its gate passed."""
    int8 = json.loads((exported / GATES_FILE).read_text())["int8"]
    assert int8["passed"] is True and int8["reason"] == ""
    assert int8["figures"]["calibration_images"] == 6  # all of the synthetic run's training images
    assert json.loads((exported / EXPORT_REPORT).read_text())["files"][INT8_FILE] > 0
    assert read_metadata(onnx.load(str(exported / INT8_FILE)), INT8_FILE).precision == "int8-qdq"


def test_the_fp16_file_is_gated_on_its_verdicts(exported: Path) -> None:
    """gates.json holds the mixed FP16 file's figures beside the others: Spearman against FP32
    and the image AUROC change of each defect kind on the run's labelled test images."""
    fp16 = json.loads((exported / GATES_FILE).read_text())[FP16_GATE]
    assert fp16["passed"] is True and fp16["failures"] == []
    figures = fp16["figures"]
    assert figures["spearman"] >= checks.SPEARMAN_MIN and 0 < figures["map_err_rel_range"] < 0.01
    assert {"auroc_logical_change", "auroc_structural_change"} <= set(figures)
    assert all(abs(v) <= FP16_AUROC_TOLERANCE for k, v in figures.items() if k.endswith("_change"))


def test_an_fp16_file_that_changes_a_verdict_fails_the_export(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates_module, "allowed_change", lambda *_: -1.0)  # no AUROC change can meet this
    out = tmp_path / "never"
    with pytest.raises(ExportError, match=r"(?s)FP16 checks failed — nothing was written \(export with "
                       r"--no-fp16.*fp16: image AUROC of logical anomalies .*figures: spearman="):
        export_run(run, ExportOptions(out, batch=4, int8=False), log=lambda _: None)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_local_mode_leaves_global_decoders_out(run: Path, exported: Path, tmp_path: Path) -> None:
    export_run(run, ExportOptions(tmp_path / "local", batch=4, fp16=False, int8=False,
                                  branch_mode=BranchMode.LOCAL), log=lambda _: None)
    both = onnx.load(str(exported / "model.onnx"))
    local = onnx.load(str(tmp_path / "local" / "model.onnx"))
    model, _, _ = load_run(run)
    dropped = sum(p.numel() for m in (model.phi_g, model.psi_g) for p in m.parameters())
    assert _initializer_floats(both) - _initializer_floats(local) >= dropped
    assert read_metadata(local, "local").branch_mode == "local"
    assert not (tmp_path / "local" / "model.fp16.onnx").exists()


def test_failed_check_writes_nothing(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "MAP_TOLERANCE", -1.0)  # no export can meet this
    out = tmp_path / "never"
    with pytest.raises(ExportError, match="anomaly-map error"):
        export_run(run, ExportOptions(out, batch=4, fp16=False), log=lambda _: None)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind


def test_existing_output_is_not_overwritten(run: Path, exported: Path) -> None:
    before = (exported / "model.onnx").stat().st_mtime_ns
    with pytest.raises(ExportError, match="--overwrite"):
        export_run(run, ExportOptions(exported, batch=4), log=lambda _: None)
    assert (exported / "model.onnx").stat().st_mtime_ns == before


def test_trt_without_tensorrt_fails_at_once_and_keeps_onnx(run: Path, exported: Path) -> None:
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here; the no-TensorRT path cannot be shown")
    except ImportError:
        pass
    from glcf_runtime.backends.tensorrt.probe import TensorRTUnavailable

    before = {p.name: p.stat().st_mtime_ns for p in exported.iterdir()}
    with pytest.raises(TensorRTUnavailable, match="tensorrt"):
        export_run(run, ExportOptions(exported, batch=4, trt=True, overwrite=True), log=lambda _: None)
    assert {p.name: p.stat().st_mtime_ns for p in exported.iterdir()} == before
    onnx.checker.check_model(onnx.load(str(exported / "model.onnx")))


def test_dla_over_a_batch_range_is_refused_before_the_export(run: Path, tmp_path: Path) -> None:
    """DLA takes no dynamic shapes: the library refuses a DLA export over 1..8 before exporting or
    looking for TensorRT, and names the fixed-batch command."""
    from glcf_runtime.errors import ConfigError

    out = tmp_path / "m"
    with pytest.raises(ConfigError, match="--batch"):
        export_run(run, ExportOptions(out, batch=8, trt=True, dla_core=0), log=lambda _: None)
    assert not out.exists()


def test_triton_repository_from_export(run: Path, tmp_path: Path) -> None:
    export_run(run, ExportOptions(tmp_path / "m", batch=4, fp16=False, int8=False,
                                  triton=tmp_path / "repo"),
               log=lambda _: None)
    config = (tmp_path / "repo" / "glcf" / "config.pbtxt").read_text()
    assert "max_batch_size: 4" in config and 'platform: "onnxruntime_onnx"' in config
    assert (tmp_path / "repo" / "glcf" / "1" / "model.onnx").read_bytes() == (
        tmp_path / "m" / "model.onnx").read_bytes()


def test_fp16_file_scores_in_fp32(exported: Path) -> None:
    """The scorer is FP32 end to end: no FP16 rounding of its intermediates or of the score."""
    model = onnx.load(str(exported / "model.fp16.onnx"))
    producer = {o: n for n in model.graph.node for o in n.output}
    node = producer["score"]
    seen = 0
    while node is not None and seen < 12:  # walk the score's chain back into the scorer
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            assert to != onnx.TensorProto.FLOAT16, node.name
        node = producer.get(node.input[0])
        seen += 1
    def cast_to(name: str) -> int | None:
        n = producer.get(name)
        if n is None or n.op_type != "Cast":
            return None
        return next(a.i for a in n.attribute if a.name == "to")

    def rounded_to_fp16(name: str) -> bool:  # fed by Cast(→fp16), directly or via Cast(→fp32)
        if cast_to(name) == onnx.TensorProto.FLOAT16:
            return True
        return cast_to(name) == onnx.TensorProto.FLOAT and cast_to(
            producer[name].input[0]) == onnx.TensorProto.FLOAT16

    rounded = [n.name for n in model.graph.node if n.name.startswith("/scorer/")
               and n.op_type != "Cast" and any(rounded_to_fp16(i) for i in n.input)]
    assert rounded == []


def test_position_normalisation_exports_its_maps(trained_run: Path, synth_root: Path,
                                                  exported: Path, tmp_path: Path) -> None:
    """A run calibrated with `--normalisation position --score-rule max` exports as one graph
    that carries its μ, σ maps as constants and scores like the torch reference, FP16 included."""
    import shutil

    from calibration.settings import CalibrationSettings
    from glcf_train.calibrate import calibrate_run

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    calibrate_run(run, CalibrationSettings(device="cpu", scoring={"normalisation": "position",
                                                                  "score_rule": "max"}),
                  progress=False)
    export_run(run, ExportOptions(tmp_path / "pos", batch=4, int8=False), log=lambda _: None)
    fp32 = onnx.load(str(tmp_path / "pos" / "model.onnx"))
    meta = read_metadata(fp32, "model.onnx")
    assert meta.fusion["normalisation"] == "position" and meta.score_rule == "max"
    assert "position" not in meta.fusion["stats"]  # the maps are graph constants, not metadata
    grids = {(56, 56), (28, 28), (14, 14)}
    assert grids <= {tuple(t.dims) for t in fp32.graph.initializer}  # μ and gain maps per scale
    image_graph = onnx.load(str(exported / "model.onnx"))
    assert not grids & {tuple(t.dims) for t in image_graph.graph.initializer}
    assert op_report(fp32).ok
    report = json.loads((tmp_path / "pos" / "export_report.json").read_text())
    assert report["figures"]["fp16_spearman"] >= 0.99
    model, cfg, _ = load_run(run)
    scorer, _ = scorer_for(run, cfg)
    images = load_images(read_split(synth_root, "breakfast_tray", "validation"), PreprocessSpec())[:4]
    ref_maps, ref_scores = checks.torch_reference(model, scorer, images)
    with checks.check_runner(tmp_path / "pos" / "model.onnx") as runner:
        maps, scores = runner.infer(images)
    span = ref_maps.max() - ref_maps.min()
    assert np.abs(maps - ref_maps).max() <= 1e-4 * span
    assert np.abs(scores - ref_scores).max() <= 1e-4 * span  # a max score is a map value


def test_published_files_say_their_checks_passed(exported: Path) -> None:
    """Staged files carry ``checks: pending`` (test_export_signals.py); only published ones, after
    every check, say "passed". The report records the batch the checks ran at, the largest that
    inspect, threshold and bench accept."""
    from glcf_export.onnx_export import CHECKS_PASSED

    for name in ("model.onnx", "model.fp16.onnx"):
        assert read_metadata(onnx.load(str(exported / name)), name).extra["checks"] == CHECKS_PASSED
    assert json.loads((exported / "export_report.json").read_text())["batch"] == 4
