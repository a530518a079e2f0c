"""OpenVINO backend: real OpenVINO on the tiny contract model (dynamic and fixed batch, BF16,
the model cache next to the model, metadata and contract checks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from glcf_bench.fixtures.contract_model import SIZE, THRESHOLD, contract_model, frame, write_model
from glcf_runtime.backends import Backend, OpenVinoRunner, open_runner, resolve_artifact
from glcf_runtime.backends import openvino as ov_backend
from glcf_runtime.backends.openvino import CACHE_DIR, native_bf16
from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import MetadataError

pytest.importorskip("openvino", reason="the openvino extra is not installed")


def _reference(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps = (np.abs(batch.astype(np.float32) - 128) / 128).mean(-1)
    return maps, maps.max(axis=(1, 2))


def test_scores_the_contract_at_any_batch(tmp_path: Path) -> None:
    batch = np.stack([frame(False), frame(True), frame(False, seed=3)])
    with open_runner(write_model(tmp_path), "openvino", threads=1) as runner:
        assert isinstance(runner, OpenVinoRunner) and runner.max_batch is None
        assert runner.describe() == "openvino model.onnx on CPU (fp32, 1 threads)"
        assert runner.metadata.threshold == THRESHOLD and runner.metadata.height == SIZE
        for size in (1, 3, 2):  # one compiled model, dynamic batch
            maps, scores = runner.infer(batch[:size])
            ref_maps, ref_scores = _reference(batch[:size])
            assert maps.shape == (size, SIZE, SIZE) and maps.dtype == np.float32
            np.testing.assert_allclose(maps, ref_maps, atol=1e-6)
            np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert scores[1] > 0.9 > 0.1 > scores[0]


def test_fixed_batch_model_refuses_a_larger_batch(tmp_path: Path) -> None:
    with OpenVinoRunner(write_model(tmp_path, batch=2)) as runner:
        assert runner.max_batch == 2
        runner.infer(np.stack([frame(), frame()]))
        with pytest.raises(ConfigError, match="batches of 1 to 2"):
            runner.infer(np.stack([frame()] * 3))
        with pytest.raises(ConfigError, match="dtype float32"):
            runner.infer(np.zeros((1, SIZE, SIZE, 3), np.float32))


def test_compiled_model_is_cached_next_to_the_model(tmp_path: Path) -> None:
    model = write_model(tmp_path / "export")
    with OpenVinoRunner(model) as runner:
        assert runner.cache == tmp_path / "export" / CACHE_DIR
    blobs = sorted((tmp_path / "export" / CACHE_DIR).iterdir())
    assert blobs, "OpenVINO wrote no compiled model into the cache"
    with OpenVinoRunner(model) as runner:  # second start: reads the cache, adds nothing
        runner.infer(frame()[None])
    assert sorted((tmp_path / "export" / CACHE_DIR).iterdir()) == blobs
    with OpenVinoRunner(model, cache=False) as runner:
        assert runner.cache is None


def test_bf16_runs_where_the_cpu_has_it(tmp_path: Path) -> None:
    model = write_model(tmp_path)
    if not native_bf16():
        with pytest.raises(ConfigError, match="no native BF16"):
            OpenVinoRunner(model, precision="bf16")
        return
    batch = np.stack([frame(False), frame(True)])
    with OpenVinoRunner(model, precision="bf16") as runner:
        assert "bf16" in runner.describe()
        _, scores = runner.infer(batch)
    np.testing.assert_allclose(scores, _reference(batch)[1], atol=1e-2)  # BF16: 8-bit mantissa


def test_bf16_without_native_support_is_refused_with_the_reason(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The CPU cannot be changed under the test: only the capability query is replaced.
    monkeypatch.setattr(ov_backend, "native_bf16", lambda core=None: False)
    with pytest.raises(ConfigError, match=r"has no native BF16.*--precision fp32"):
        OpenVinoRunner(write_model(tmp_path), precision="bf16")


def test_bad_options_and_foreign_models(tmp_path: Path) -> None:
    model = write_model(tmp_path / "ok")
    with pytest.raises(ConfigError, match="choose fp32, bf16"):
        OpenVinoRunner(model, precision="fp8")
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        OpenVinoRunner(model, threads=0)
    with pytest.raises(ConfigError, match="no ONNX model"):
        OpenVinoRunner(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="takes no providers option"):
        open_runner(model, "openvino", providers=["cpu"])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(contract_model(None), str(foreign))  # no GLCF metadata props
    with pytest.raises(MetadataError, match="not a GLCF deploy artifact"):
        OpenVinoRunner(foreign)


def test_folder_and_file_resolve_to_openvino(tmp_path: Path) -> None:
    model = write_model(tmp_path)
    assert resolve_artifact(tmp_path, "openvino") == (model, Backend.OPENVINO)
    assert resolve_artifact(tmp_path) == (model, Backend.ONNXRUNTIME)  # no backend: file type
