"""Artifact metadata: the contract between export and runtime, stored in ONNX ``metadata_props``
(and in the JSON sidecar of a TensorRT engine). All values are strings; nothing is ``eval``-ed."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields

from glcf_runtime.errors import GlcfError
from glcf_runtime.preprocess import PreprocessSpec

FORMAT = "glcf-deploy"
FORMAT_VERSION = 1  # bump when the graph's inputs, outputs or meaning change

INPUT_NAME = "image"  # uint8 [B, H, W, 3] BGR
MAP_NAME = "anomaly_map"  # float32 [B, H, W]
SCORE_NAME = "score"  # float32 [B]


class MetadataError(GlcfError):
    """An artifact whose metadata this runtime does not understand."""


@dataclass(frozen=True)
class ArtifactMetadata:
    height: int
    width: int
    branch_mode: str  # both | local | global
    score_rule: str  # std | max
    threshold: float
    threshold_rule: str
    map_range: tuple[float, float]  # heat-map colour scale (normal level, clearly anomalous)
    fusion: dict  # weights, scale weights, smoothing σ, μ/σ per branch and scale
    category: str
    config_hash: str
    preset: str
    precision: str = "fp32"  # fp32 | fp16-mixed | int8-qdq (glcf_export.quantize)
    roi: tuple[int, int, int, int] | None = None
    color_order: str = "BGR"
    layout: str = "NHWC"
    interpolation: str = "INTER_AREA"
    extra: dict = field(default_factory=dict)  # free-form, e.g. versions of the exporting tools

    @property
    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(self.height, self.width, self.roi)

    def to_props(self) -> dict[str, str]:
        """String key/value pairs for ONNX ``metadata_props``."""
        props = {"format": FORMAT, "format_version": str(FORMAT_VERSION)}
        for key, value in asdict(self).items():
            props[key] = value if isinstance(value, str) else json.dumps(value)
        return props

    @staticmethod
    def from_props(props: dict[str, str], source: str) -> ArtifactMetadata:
        """Parse and check metadata read from ``source``.

        Raises:
            MetadataError: not a GLCF artifact, another format version, or a missing / bad key.
        """
        rebuild = f"re-export it with this version: glcf export RUN --out DIR (source: {source})"
        if props.get("format") != FORMAT:
            raise MetadataError(f"{source} is not a GLCF deploy artifact (no '{FORMAT}' metadata); {rebuild}")
        version = props.get("format_version")
        if version != str(FORMAT_VERSION):
            raise MetadataError(
                f"{source} has deploy format version {version}; this runtime reads version "
                f"{FORMAT_VERSION}; {rebuild}"
            )
        values = {}
        for f in fields(ArtifactMetadata):
            if f.name not in props:
                if f.default is not MISSING or f.default_factory is not MISSING:
                    continue  # optional: the dataclass default applies
                raise MetadataError(f"{source}: metadata lacks {f.name!r}; {rebuild}")
            raw = props[f.name]
            try:
                values[f.name] = raw if f.type == "str" else json.loads(raw)
            except json.JSONDecodeError:
                raise MetadataError(f"{source}: metadata {f.name}={raw!r} is malformed; {rebuild}") from None
        for key in ("map_range", "roi"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        _check(values, source, rebuild)
        return ArtifactMetadata(**values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """A finite int or float (JSON numbers; not a bool, not NaN or ±inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(map(_is_real, value)) and value[0] < value[1]


def _roi(value: object) -> bool:
    if value is None:
        return True
    if not (isinstance(value, tuple) and len(value) == 4 and all(map(_is_int, value))):
        return False
    x, y, w, h = value
    return x >= 0 and y >= 0 and w > 0 and h > 0


def threshold_problem(value: object, score_rule: str) -> str | None:
    """Why ``value`` cannot be a threshold for scores of ``score_rule``; None when it can.

    NaN compares false with every score (nothing is ever anomalous), +inf is never reached and a
    negative threshold on ``std`` scores (never negative) flags every frame.
    """
    if not _is_real(value):
        return "a threshold must be a finite number (NaN or infinity would switch detection off)"
    if score_rule == "std" and value < 0:
        return "std scores are never negative, so a negative threshold would flag every frame"
    return None


def _check(values: dict, source: str, rebuild: str) -> None:
    """Every key's type and range, so a bad artifact fails when opened, not at some frame."""
    size = lambda v: _is_int(v) and 0 < v <= 16384  # noqa: E731
    checks = (
        ("branch_mode", values.get("branch_mode") in ("both", "local", "global")),
        ("score_rule", values.get("score_rule") in ("std", "max")),
        ("color_order", values.get("color_order", "BGR") == "BGR"),
        ("layout", values.get("layout", "NHWC") == "NHWC"),
        ("interpolation", values.get("interpolation", "INTER_AREA") == "INTER_AREA"),
        ("height", size(values.get("height"))),
        ("width", size(values.get("width"))),
        ("threshold", threshold_problem(values.get("threshold"), values.get("score_rule")) is None),
        ("map_range", _pair(values.get("map_range"))),
        ("fusion", isinstance(values.get("fusion"), dict)),
        ("roi", _roi(values.get("roi"))),
        ("extra", isinstance(values.get("extra", {}), dict)),
    )
    for key, ok in checks:
        if not ok:
            raise MetadataError(f"{source}: metadata {key}={values.get(key)!r} is not understood "
                                f"by this runtime; {rebuild}")
