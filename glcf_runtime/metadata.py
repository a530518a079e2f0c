"""Artifact metadata: the contract between export and runtime, stored in ONNX ``metadata_props``
(and in the JSON sidecar of a TensorRT engine). All values are strings; nothing is ``eval``-ed."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from calibration.threshold import FLOAT32_MAX, MAX_MARGIN
from glcf_runtime.errors import ConfigError, GlcfError
from glcf_runtime.preprocess import PreprocessSpec
from glcf_runtime.requires import require

if TYPE_CHECKING:
    import onnx

FORMAT = "glcf-deploy"
FORMAT_VERSION = 1  # bump when the graph's inputs, outputs or meaning change

INPUT_NAME = "image"  # uint8 [B, H, W, 3] BGR
MAP_NAME = "anomaly_map"  # float32 [B, H, W]
SCORE_NAME = "score"  # float32 [B]
# ``extra["checks"]`` in every file glcf export writes: pending until all the export's checks
# passed (a file left by an export that was killed says so, and ``open_runner`` refuses it).
CHECKS_KEY = "checks"
CHECKS_PENDING = "pending: glcf export had not finished checking this file; do not deploy it"
CHECKS_PASSED = "passed"


NORMAL_RULES = ("normal_quantile", "target_fpr")  # threshold rules on normal scores alone


class MetadataError(GlcfError):
    """An artifact whose metadata this runtime does not understand."""


class BranchMode(str, Enum):
    """Which error maps the detector scores (DESIGN §3)."""

    BOTH = "both"
    LOCAL = "local"  # Φ_L vs Ψ_L only: textures
    GLOBAL = "global"  # Φ_G vs Ψ_G only


class ScoreRule(str, Enum):
    """How an anomaly map becomes an image score."""

    STD = "std"  # standard deviation of the map (paper and authors' code)
    MAX = "max"


class Normalisation(str, Enum):
    """What the fusion statistics μ, σ of each (branch, scale) error map are
    (``ArtifactMetadata.fusion["normalisation"]``)."""

    IMAGE = "image"  # two scalars over all positions and images (paper and authors' code)
    POSITION = "position"  # a μ and σ per map position over the images: fixed layouts (blisters, trays)


class FilePrecision(str, Enum):
    """What an artifact file holds (``ArtifactMetadata.precision``)."""

    FP32 = "fp32"
    FP16_MIXED = "fp16-mixed"  # networks in FP16, scoring in FP32 (DESIGN §4)
    INT8_QDQ = "int8-qdq"  # glcf_export.quantize


@dataclass(frozen=True)
class ArtifactMetadata:
    height: int
    width: int
    branch_mode: BranchMode
    score_rule: ScoreRule
    threshold: float
    threshold_rule: str
    map_range: tuple[float, float]  # heat-map colour scale (normal level, clearly anomalous)
    fusion: dict  # weights, scale weights, smoothing σ, μ/σ per branch and scale
    category: str
    config_hash: str
    preset: str
    precision: str = "fp32"  # a FilePrecision value
    roi: tuple[int, int, int, int] | None = None
    # (lowest, highest) image score of the calibration's normal images; None: not recorded
    score_range: tuple[float, float] | None = None
    color_order: str = "BGR"
    layout: str = "NHWC"
    interpolation: str = "INTER_AREA"
    extra: dict = field(default_factory=dict)  # free-form, e.g. versions of the exporting tools

    def __post_init__(self) -> None:  # "both" / "std" as given by a caller become the enums
        for name, kind in ENUM_FIELDS.items():
            object.__setattr__(self, name, kind(getattr(self, name)))

    @property
    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(self.height, self.width, self.roi)

    def to_props(self) -> dict[str, str]:
        """String key/value pairs for ONNX ``metadata_props``."""
        props = {"format": FORMAT, "format_version": str(FORMAT_VERSION)}
        for key, value in asdict(self).items():
            if isinstance(value, Enum):
                value = value.value
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
                values[f.name] = raw if f.type == "str" or f.name in ENUM_FIELDS else json.loads(raw)
            except (ValueError, RecursionError):  # bad JSON, > 4300 digits, nested too deep
                raise MetadataError(f"{source}: metadata {f.name}={shown(raw)} is malformed; "
                                    f"{rebuild}") from None
        for key in ("map_range", "roi", "score_range"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        _check(values, source, rebuild)
        return ArtifactMetadata(**values)


ENUM_FIELDS = {"branch_mode": BranchMode, "score_rule": ScoreRule}  # stored by their values


def read_onnx_props(model: str | Path | onnx.ModelProto, source: str | None = None) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file or of a model already loaded (``source`` names it in
    messages), read without a session: the contract an engine's sidecar carries.

    Raises:
        ConfigError: the onnx package is missing, the file is not an ONNX model, or it carries no
            GLCF metadata.
    """
    source = _source(model, source)
    props = _onnx_props(model, source)
    if "format_version" not in props:
        raise ConfigError(f"{source} carries no GLCF metadata; give a file written by glcf export")
    return props


def read_metadata(model: str | Path | onnx.ModelProto, source: str | None = None) -> ArtifactMetadata:
    """The contract of an ONNX file or of a model already loaded, parsed and checked.

    Raises:
        ConfigError: the onnx package is missing or the file is not an ONNX model.
        MetadataError: see ``ArtifactMetadata.from_props``.
    """
    source = _source(model, source)
    return ArtifactMetadata.from_props(_onnx_props(model, source), source)


def _source(model: object, source: str | None) -> str:
    return source or (str(model) if isinstance(model, (str, Path)) else "the ONNX model")


def _onnx_props(model: str | Path | onnx.ModelProto, source: str) -> dict[str, str]:
    """Every ONNX file's metadata is read here (``onnx`` is imported only now)."""
    if isinstance(model, (str, Path)):
        onnx = require("onnx", who="reading the model's metadata")
        try:
            model = onnx.load(str(model), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError, ValueError or OSError on a damaged file
            raise ConfigError(f"{source} is not a readable ONNX model ({exc}); export it again") from None
    return {p.key: p.value for p in model.metadata_props}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """An int or float within float32's range (JSON numbers; not a bool, NaN, ±inf or a 400-digit
    integer): scores are float32, so no score reaches a value beyond it."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and -FLOAT32_MAX < value < FLOAT32_MAX  # exact for ints of any size


def _pair(value: object, strict: bool = True) -> bool:
    """``(low, high)`` of reals with ``low < high`` (``low <= high`` unless ``strict``)."""
    if not (isinstance(value, tuple) and len(value) == 2 and all(map(_is_real, value))):
        return False
    return value[0] < value[1] if strict else value[0] <= value[1]


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, shortened so a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}…({len(text)} characters)"


def is_roi(value: object) -> bool:
    """None, or ``(x, y, w, h)``: non-negative integer corner, positive integer size."""
    if value is None:
        return True
    if not (isinstance(value, tuple) and len(value) == 4 and all(map(_is_int, value))):
        return False
    x, y, w, h = value
    return x >= 0 and y >= 0 and w > 0 and h > 0


def threshold_problem(value: object, score_rule: str) -> str | None:
    """Why ``value`` cannot be a threshold for scores of ``score_rule``; None when it can.

    NaN compares false with every score (nothing is ever anomalous), no float32 score reaches
    +inf or 1e300, and a negative threshold on ``std`` scores (never negative) flags every frame.
    """
    if not _is_real(value):
        return ("a threshold must be a finite number within float32's range (±3.4e38): NaN or a "
                "larger value would switch detection off")
    if score_rule == "std" and value < 0:
        return "std scores are never negative, so a negative threshold would flag every frame"
    return None


def _slack(low: float, high: float) -> float:
    """Rounding room for comparisons with a calibration's score range."""
    return 1e-9 * max(abs(low), abs(high), 1e-30)


def range_problem(threshold: float, score_range: tuple[float, float]) -> str | None:
    """Why a threshold set on normal scores cannot come from a calibration whose normal scores
    span ``score_range``; None when it can. ``calibration.threshold``'s normal rules give a
    threshold in ``[lowest, highest + MAX_MARGIN × spread]``: below, every normal frame would be
    anomalous; far above, detection is as good as off."""
    low, high = score_range
    if low - _slack(low, high) <= threshold <= high + MAX_MARGIN * (high - low) + _slack(low, high):
        return None
    return (f"outside the calibration's score range {low:.4g} to {high:.4g} (a threshold from "
            f"normal scores lies between the lowest and {MAX_MARGIN:g} spreads above the highest)")


def score_problem(value: float, score_rule: str,
                  score_range: tuple[float, float] | None = None) -> str | None:
    """Why a frame's image score is not usable for a verdict; None when it is.

    NaN and ±inf have no verdict; ±3.4e38 is float32 saturation (an overflow, or a NaN that a
    backend clamped); a std score is never negative; with the calibration's range recorded, a
    score further below its lowest normal score than the highest threshold lies above its
    highest means the arithmetic failed. High scores are anomalies, never a problem.
    """
    if math.isnan(value):
        return "NaN (not a number)"
    if math.isinf(value):
        return "+infinity" if value > 0 else "-infinity"
    if abs(value) >= FLOAT32_MAX:
        return f"{value:.4g}, the float32 limit (an overflow, or a NaN the backend clamped)"
    if score_rule == "std" and value < 0:
        return f"{value:.4g}, negative, which a std score never is"
    if score_range is not None:
        low, high = score_range
        if value < low - MAX_MARGIN * (high - low) - _slack(low, high):
            return (f"{value:.4g}, far below the calibration's normal scores ({low:.4g} to "
                    f"{high:.4g})")
    return None


def _check(values: dict, source: str, rebuild: str) -> None:
    """Every key's type and range, so a bad artifact fails when opened, not at some frame."""
    size = lambda v: _is_int(v) and 0 < v <= 16384  # noqa: E731
    checks = (
        ("branch_mode", values.get("branch_mode") in {m.value for m in BranchMode}),
        ("score_rule", values.get("score_rule") in {r.value for r in ScoreRule}),
        ("color_order", values.get("color_order", "BGR") == "BGR"),
        ("layout", values.get("layout", "NHWC") == "NHWC"),
        ("interpolation", values.get("interpolation", "INTER_AREA") == "INTER_AREA"),
        ("height", size(values.get("height"))),
        ("width", size(values.get("width"))),
        ("map_range", _pair(values.get("map_range"))),
        ("score_range", values.get("score_range") is None
         or _pair(values.get("score_range"), strict=False)),
        ("fusion", isinstance(values.get("fusion"), dict)),
        ("roi", is_roi(values.get("roi"))),
        ("precision", values.get("precision", "fp32") in {p.value for p in FilePrecision}),
        ("extra", isinstance(values.get("extra", {}), dict)),
    )
    for key, ok in checks:
        if not ok:
            raise MetadataError(f"{source}: metadata {key}={shown(values.get(key))} is not "
                                f"understood by this runtime; {rebuild}")
    threshold, score_range = values.get("threshold"), values.get("score_range")
    problem = threshold_problem(threshold, values["score_rule"])
    if problem is not None:
        raise MetadataError(f"{source}: metadata threshold={shown(threshold)} cannot be used: "
                            f"{problem}; {rebuild}")
    if score_range is not None and values.get("threshold_rule") in NORMAL_RULES:
        problem = range_problem(threshold, score_range)
        if problem is not None:
            raise MetadataError(f"{source}: metadata threshold={threshold!r} lies {problem}; "
                                f"set it again with glcf calibrate RUN, then {rebuild}")
