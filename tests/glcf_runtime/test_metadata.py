"""Artifact metadata: round trip and refusal of what this runtime does not understand."""

from __future__ import annotations

from pathlib import Path

import pytest

from glcf_runtime.metadata import ArtifactMetadata, MetadataError
from tests.glcf_runtime.contract_model import contract_metadata, write_model

META = ArtifactMetadata(
    height=224, width=224, branch_mode="both", score_rule="std", threshold=1.25,
    threshold_rule="normal_quantile", map_range=(0.5, 9.0), fusion={"w_local": 5.0},
    category="cable_pair", config_hash="0123abcd", preset="tiny", roi=(10, 20, 300, 200),
)


def test_round_trip_is_plain_strings() -> None:
    props = META.to_props()
    assert all(isinstance(v, str) for v in props.values())
    assert props["format"] == "glcf-deploy" and props["format_version"] == "1"
    assert ArtifactMetadata.from_props(props, "m.onnx") == META
    assert META.preprocess_spec.roi == (10, 20, 300, 200)


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "other"}, "not a GLCF deploy artifact"),
    ({"format_version": "99"}, "version 99"),
    ({"branch_mode": "sideways"}, "branch_mode"),
    ({"color_order": "RGB"}, "color_order"),
    ({"threshold": "{oops"}, "malformed"),
])
def test_refusals_say_what_to_rebuild(change: dict, message: str) -> None:
    props = {**META.to_props(), **change}
    with pytest.raises(MetadataError, match=message) as err:
        ArtifactMetadata.from_props(props, "m.onnx")
    assert "glcf export" in str(err.value) and "m.onnx" in str(err.value)


def test_missing_required_key() -> None:
    props = META.to_props()
    del props["threshold"]
    with pytest.raises(MetadataError, match="lacks 'threshold'"):
        ArtifactMetadata.from_props(props, "m.onnx")


@pytest.mark.parametrize(("key", "raw"), [
    ("threshold", '"abc"'),  # a string: crashed at the first comparison
    ("threshold", "NaN"),  # every frame "not anomalous"
    ("threshold", "1e400"),  # +inf: never reached
    ("threshold", "-5"),  # std scores are never negative: every frame anomalous
    ("threshold", "true"),
    ("map_range", "[5]"),  # crashed at the first frame written to a video
    ("map_range", "[2, 1]"),
    ("map_range", '["a", "b"]'),
    ("height", "true"),  # gave "expected uint8 [B, True, 224, 3]"
    ("width", "224.5"),
    ("width", "0"),
    ("roi", "[1, 2]"),
    ("roi", "[0, 0, -5, 10]"),
    ("fusion", "[]"),
    ("extra", "3"),
])
def test_every_field_is_type_and_range_checked_on_open(key: str, raw: str) -> None:
    props = {**META.to_props(), key: raw}
    with pytest.raises(MetadataError, match=f"metadata {key}=") as err:
        ArtifactMetadata.from_props(props, "m.onnx")
    assert "glcf export" in str(err.value)


def test_max_rule_may_have_a_negative_threshold() -> None:
    props = {**META.to_props(), "score_rule": "max", "threshold": "-0.5"}
    assert ArtifactMetadata.from_props(props, "m.onnx").threshold == -0.5


def test_bad_metadata_in_a_real_file_is_refused_when_opened(tmp_path: Path) -> None:
    import onnx

    from glcf_runtime.backends import OnnxRuntimeRunner
    from tests.glcf_runtime.contract_model import contract_model

    model = contract_model(contract_metadata())
    for prop in model.metadata_props:
        if prop.key == "height":
            prop.value = "true"
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(MetadataError, match="metadata height=True"):
        OnnxRuntimeRunner(tmp_path / "model.onnx")


@pytest.mark.parametrize("value", ["NaN", "1e400", "-5", '"0.3"'])
def test_threshold_json_with_an_unusable_value_is_refused(tmp_path: Path, value: str) -> None:
    from glcf_runtime.backends import OnnxRuntimeRunner
    from glcf_runtime.errors import ConfigError

    path = write_model(tmp_path, contract_metadata(score_rule="std"))
    (tmp_path / "threshold.json").write_text(f'{{"threshold": {value}, "config_hash": "cafe"}}')
    with OnnxRuntimeRunner(path) as runner, pytest.raises(ConfigError, match=r"threshold\.json") as err:
        runner.threshold  # noqa: B018 (the property reads the file)
    assert "cannot be used" in str(err.value) and "glcf threshold" in str(err.value)
