"""Artifact metadata: round trip and refusal of what this runtime does not understand."""

from __future__ import annotations

import pytest

from glcf_runtime.metadata import ArtifactMetadata, MetadataError

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
