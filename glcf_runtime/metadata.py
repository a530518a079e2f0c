"""Artifact metadata: the contract between export and runtime, stored in ONNX ``metadata_props``
(and in the JSON sidecar of a TensorRT engine). All values are strings; nothing is ``eval``-ed."""

from __future__ import annotations

import json
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
    precision: str = "fp32"  # fp32 | fp16-mixed
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
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        _check(values, source, rebuild)
        return ArtifactMetadata(**values)


def _check(values: dict, source: str, rebuild: str) -> None:
    checks = (
        ("branch_mode", values.get("branch_mode") in ("both", "local", "global")),
        ("score_rule", values.get("score_rule") in ("std", "max")),
        ("color_order", values.get("color_order", "BGR") == "BGR"),
        ("layout", values.get("layout", "NHWC") == "NHWC"),
        ("interpolation", values.get("interpolation", "INTER_AREA") == "INTER_AREA"),
        ("height", isinstance(values.get("height"), int) and values["height"] > 0),
        ("width", isinstance(values.get("width"), int) and values["width"] > 0),
    )
    for key, ok in checks:
        if not ok:
            raise MetadataError(f"{source}: metadata {key}={values.get(key)!r} is not understood "
                                f"by this runtime; {rebuild}")
