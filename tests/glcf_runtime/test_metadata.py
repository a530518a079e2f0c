"""Artifact metadata: round trip and refusal of what this runtime does not understand."""

from __future__ import annotations

from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import contract_metadata, write_model
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

    from glcf_bench.fixtures.contract_model import contract_model
    from glcf_runtime.backends import OnnxRuntimeRunner

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


@pytest.mark.parametrize(("key", "raw"), [
    ("precision", '"bogus"'),  # not a file precision the exporters write
    ("precision", '"FP16"'),
    ("threshold", "1e300"),  # finite, but no float32 score ever reaches it: detection off
    ("threshold", "1" + "0" * 400),  # a 400-digit integer: gave OverflowError
    ("threshold", "1" + "0" * 5000),  # past Python's integer-parsing limit: gave ValueError
    ("map_range", "[0, " + "9" * 400 + "]"),
    ("score_range", "[2, 1]"),
    ("score_range", '[0, "x"]'),
    ("fusion", "[" * 100_000 + "]" * 100_000),  # nested past the parser's depth: RecursionError
])
def test_values_outside_the_contract_are_one_line_errors(key: str, raw: str) -> None:
    props = {**META.to_props(), key: raw}
    with pytest.raises(MetadataError, match=f"metadata {key}") as err:
        ArtifactMetadata.from_props(props, "m.onnx")
    message = str(err.value)
    assert "\n" not in message and len(message) < 400 and "m.onnx" in message


@pytest.mark.parametrize(("threshold", "ok"), [
    (2.0, True),
    (2.0 + 10 * 2.0, True),  # the quantile rule's largest margin, 10 spreads above the highest
    (2.0 + 10 * 2.0 + 0.01, False),
    (1e30, False),  # within float32's range, but detection as good as off
    (-0.5, False),  # below every normal score of the calibration: every frame anomalous
    (0.0, True),
])
def test_threshold_must_lie_in_the_calibrations_score_range(threshold: float, ok: bool) -> None:
    meta = ArtifactMetadata(**{**META.__dict__, "score_rule": "max", "score_range": (0.0, 2.0),
                               "threshold": threshold})
    props = meta.to_props()
    if ok:
        assert ArtifactMetadata.from_props(props, "m.onnx") == meta
        return
    with pytest.raises(MetadataError, match="metadata threshold") as err:
        ArtifactMetadata.from_props(props, "m.onnx")
    assert "score range 0 to 2" in str(err.value) and "glcf calibrate" in str(err.value)


def test_every_precision_the_exporters_write_is_understood() -> None:
    from glcf_runtime.metadata import FilePrecision

    for precision in FilePrecision:
        props = {**META.to_props(), "precision": precision.value}
        assert ArtifactMetadata.from_props(props, "m.onnx").precision == precision.value


@pytest.mark.parametrize(("entry", "shown"), [
    ('"roi": 5', "roi 5"),  # gave TypeError: 'int' object is not iterable
    ('"roi": [1, 2, "a", 4]', "roi [1, 2, 'a', 4]"),
    ('"roi": [0, 0, 0, 8]', "roi [0, 0, 0, 8]"),
    ('"threshold": 1' + "0" * 400, "threshold 1000"),  # gave OverflowError
])
def test_threshold_json_with_a_bad_entry_is_a_one_line_error(tmp_path: Path, entry: str,
                                                             shown: str) -> None:
    from glcf_runtime.backends import OnnxRuntimeRunner
    from glcf_runtime.errors import ConfigError

    path = write_model(tmp_path)
    fields = {"threshold": "0.3", "config_hash": '"cafe"', "roi": "null"}
    key = entry.split('"')[1]
    fields[key] = entry.split(": ", 1)[1]
    text = ", ".join(f'"{k}": {v}' for k, v in fields.items())
    (tmp_path / "threshold.json").write_text("{" + text + "}")
    with OnnxRuntimeRunner(path) as runner, pytest.raises(ConfigError, match=r"threshold\.json") as err:
        runner.threshold  # noqa: B018 (the property reads the file)
    message = str(err.value)
    assert shown in message and "glcf threshold" in message and "\n" not in message
    assert len(message.replace(str(tmp_path), "DIR")) < 300
