"""Frozen configuration dataclasses, presets, and their YAML form.

Every size in the model comes from here, so tests can build a tiny model in milliseconds and
the `paper` preset reproduces the configuration of DESIGN.md §2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from glcf_runtime.errors import ConfigError
from glcf_runtime.metadata import BranchMode, Normalisation, ScoreRule  # the artifact's contract


class SamVariant(str, Enum):
    """Semantic aggregation module of the bottleneck (DESIGN §2)."""

    PS = "ps"  # 49 spatial semantic tokens in the encoder
    PGS = "pgs"  # one global token in the encoder, 49 spatial tokens before the global decoder
    PSS = "pss"  # spatial tokens in both places (paper default)


class UpsampleKind(str, Enum):
    """Up-sampling layer of the three decoders."""

    PATCH_EXPAND = "patch_expand"  # Swin-Unet patch expanding (authors' code)
    DUAL = "dual"  # SUNet dual up-sample (the paper's text)


class LossForm(str, Enum):
    """The distance each training loss term takes between a prediction and its target (DESIGN §2)."""

    MSE = "mse"  # mean squared error over positions and channels (paper)
    COSINE = "cosine"  # mean over positions of 1 - cosine similarity over channels (RD4AD): scale-free
    MSE_COSINE = "mse+cosine"  # their sum: the magnitudes MSE scoring reads, the directions cosine weighs


class BackboneKind(str, Enum):
    """Which frozen ImageNet network Φ_L is (DESIGN §2: four taps at strides 4/8/16/32)."""

    SWIN = "swin"  # timm Swin transformer with this config's sizes (paper: Swin-T)
    EFFICIENTNET_LITE0 = "efficientnet_lite0"  # timm tf_efficientnet_lite0 (TF "same" padding)
    EFFICIENTNET_LITE1 = "efficientnet_lite1"
    EFFICIENTNET_LITE2 = "efficientnet_lite2"
    WIDE_RESNET50_2 = "wide_resnet50_2"  # torchvision / timm layout (the authors' later code)


# Channels of the taps t0..t3 of the CNN backbones (timm feature_info at strides 4, 8, 16, 32).
CNN_TAP_CHANNELS: dict[BackboneKind, tuple[int, int, int, int]] = {
    BackboneKind.EFFICIENTNET_LITE0: (24, 40, 112, 320),
    BackboneKind.EFFICIENTNET_LITE1: (24, 40, 112, 320),
    BackboneKind.EFFICIENTNET_LITE2: (24, 48, 120, 352),
    BackboneKind.WIDE_RESNET50_2: (256, 512, 1024, 2048),
}


@dataclass(frozen=True)
class BackboneConfig:
    """Φ_L: a timm Swin transformer cut after stage 4's patch merging, or a CNN's four taps."""

    kind: BackboneKind = BackboneKind.SWIN
    # Standardise each tap per channel with its mean and std over the training images (fixed
    # before the first step, stored with the model). CNN taps' scales differ per channel and per
    # layer by orders of magnitude; unstandardised, their MSE is ruled by a few channels.
    standardize: bool = False
    embed_dim: int = 96  # Swin: channels of t0; t1, t2, t3 have 2x, 4x, 8x
    depths: tuple[int, int, int] = (2, 2, 6)  # blocks of stages 1-3; stage 4's blocks are cut off
    num_heads: tuple[int, int, int] = (3, 6, 12)
    window_size: int = 7
    patch_size: int = 4
    # timm name whose ImageNet weights fit these sizes; None: no published weights exist.
    timm_name: str | None = "swin_tiny_patch4_window7_224"


@dataclass(frozen=True)
class BottleneckConfig:
    """Semantic bottleneck: MS-PEM and SAM."""

    dim: int = 240  # token width; divisible by 4 for the 2-D sine-cosine position embedding
    encoder_depth: int = 6
    encoder_heads: int = 12
    decoder_depth: int = 6  # global and local decoders alike
    decoder_heads: int = 16  # authors' code
    mlp_ratio: float = 4.0
    variant: SamVariant = SamVariant.PSS


@dataclass(frozen=True)
class DecoderConfig:
    """Φ_G, Ψ_L, Ψ_G: a Swin-T run backwards (7 → 14 → 28 → 56)."""

    depths: tuple[int, int] = (6, 2)  # Swin blocks at 14x14 and at 28x28
    num_heads: tuple[int, int] = (12, 6)
    upsample: UpsampleKind = UpsampleKind.PATCH_EXPAND


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 224  # square input; 4 * patch_size * 8 * window must divide it evenly
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    bottleneck: BottleneckConfig = field(default_factory=BottleneckConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    @property
    def channels(self) -> tuple[int, int, int, int]:
        """Channels of the taps t0..t3."""
        if self.backbone.kind is not BackboneKind.SWIN:
            return CNN_TAP_CHANNELS[self.backbone.kind]
        c = self.backbone.embed_dim
        return (c, 2 * c, 4 * c, 8 * c)

    def check(self) -> None:
        """Refuse sizes the layers cannot take, naming the field to change.

        Raises:
            ConfigError: a decoder's heads do not divide the width of the taps it predicts.
        """
        _, c1, c2, _ = self.channels
        for width, heads, where in ((c2, self.decoder.num_heads[0], "at 14x14"),
                                    (c1, self.decoder.num_heads[1], "at 28x28")):
            if width % heads:
                raise ConfigError(
                    f"decoder.num_heads {list(self.decoder.num_heads)}: {heads} heads {where} do "
                    f"not divide the {self.backbone.kind.value} taps' {width} channels; set "
                    "decoder.num_heads in a --config file so that each divides its width, "
                    "e.g. [4, 2]")

    @property
    def grids(self) -> tuple[int, int, int, int]:
        """Side length of the taps t0..t3 (56, 28, 14, 7 at 224)."""
        g = self.image_size // self.backbone.patch_size
        return (g, g // 2, g // 4, g // 8)


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05
    batch_size: int = 8
    epochs: int | None = 500  # training length in epochs ...
    steps: int | None = None  # ... or in optimiser steps (takes precedence when set)
    lr_drop_at: float = 0.6  # fraction of the run after which lr is multiplied by lr_drop
    lr_drop: float = 0.1
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # λ1 ℓ_C, λ2 ℓ_E, λ3 ℓ_G
    detach_global_target: bool = False  # True: ℓ_G does not train Φ_G (authors' code: False)
    loss_form: LossForm = LossForm.MSE  # every term's distance; scoring stays MSE (DESIGN §3)
    amp: bool = True  # mixed precision on CUDA only
    seed: int = 0
    # Each training image is also learnt once shifted by up to this many pixels of the model's
    # input in x and y (a seeded draw per image; the border repeated): pose jitter that a
    # camera sees. 0 (the paper): none.
    shift_augment: int = 0


@dataclass(frozen=True)
class ScoringConfig:
    """Fusion of the error maps into an anomaly map (DESIGN §3)."""

    w_local: float = 5.0
    w_global: float = 1.0
    scale_weights: tuple[float, float, float] = (1.0, 3.0, 6.0)  # for scales 56, 28, 14
    smoothing_sigma: float = 4.0  # Gaussian σ in pixels of the input image
    score_rule: ScoreRule = ScoreRule.STD
    branch_mode: BranchMode = BranchMode.BOTH
    normalisation: Normalisation = Normalisation.IMAGE

    def describe(self) -> str:
        """One line for people: what the CLI, the report and the closing tables print."""
        return (f"branch mode {self.branch_mode.value}, image score {self.score_rule.value}, "
                f"{self.normalisation.value} normalisation, smoothing σ {self.smoothing_sigma} px")


@dataclass(frozen=True)
class GlcfConfig:
    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    def hash(self) -> str:
        """Short sha256 of the model and training configuration (recorded in artifacts).

        Fields added later (``_LATER_FIELDS``) enter only when they differ from the value every
        earlier run had, so those runs keep their hash (and their calibration).
        """
        data = to_dict(self)
        for *path, key, old_default in _LATER_FIELDS:
            section = data
            for name in path:
                section = section[name]
            if section[key] == old_default:
                del section[key]
        payload = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


# Fields added after runs existed: left out of the hash while they hold the value every earlier
# run had, so those runs keep their hash (and their calibration): (*path, key, default).
_LATER_FIELDS = (
    ("scoring", "normalisation", Normalisation.IMAGE.value),
    ("model", "backbone", "kind", BackboneKind.SWIN.value),
    ("model", "backbone", "standardize", False),
    ("train", "loss_form", LossForm.MSE.value),
    ("train", "shift_augment", 0),
)


def _tiny() -> GlcfConfig:
    model = ModelConfig(
        backbone=BackboneConfig(embed_dim=32, depths=(1, 1, 1), num_heads=(1, 2, 4), timm_name=None),
        bottleneck=BottleneckConfig(
            dim=64, encoder_depth=2, encoder_heads=4, decoder_depth=2, decoder_heads=4
        ),
        decoder=DecoderConfig(depths=(1, 1), num_heads=(4, 2)),
    )
    # Short, brisk schedule: the demo trains this on 2 CPU cores in a few minutes.
    train = TrainConfig(lr=1e-3, epochs=None, steps=400, weight_decay=0.0)
    return GlcfConfig(preset="tiny", model=model, train=train)


def _small() -> GlcfConfig:
    model = ModelConfig(
        backbone=BackboneConfig(embed_dim=64, depths=(2, 2, 2), num_heads=(2, 4, 8), timm_name=None),
        bottleneck=BottleneckConfig(
            dim=128, encoder_depth=3, encoder_heads=8, decoder_depth=3, decoder_heads=8
        ),
        decoder=DecoderConfig(depths=(2, 2), num_heads=(8, 4)),
    )
    return GlcfConfig(preset="small", model=model, train=TrainConfig(lr=3e-4, epochs=100))


def _edge() -> GlcfConfig:
    """ImageNet-pretrained EfficientNet-Lite0 Φ_L (weights install offline) with a bottleneck and
    decoders small enough to train one category in minutes on 2 CPU cores."""
    model = ModelConfig(
        backbone=BackboneConfig(kind=BackboneKind.EFFICIENTNET_LITE0, standardize=True, timm_name=None),
        bottleneck=BottleneckConfig(
            dim=64, encoder_depth=2, encoder_heads=4, decoder_depth=2, decoder_heads=4
        ),
        # Swin blocks at the taps' own widths (112 at 14², 40 at 28² for Lite0): heads divide them.
        decoder=DecoderConfig(depths=(1, 1), num_heads=(4, 2)),
    )
    # 2400 steps: at 800 the local decoders still left 20-40 % of the standardised taps' variance
    # on normal images; 2400 raised logical AUROC on every scene measured (docs/quality.md).
    # A shifted copy of each image (up to 7 px): fewer false alarms on good parts that sit a few
    # pixels off (docs/quality.md).
    train = TrainConfig(lr=1e-3, epochs=None, steps=2400, weight_decay=0.0, shift_augment=7)
    return GlcfConfig(preset="edge", model=model, train=train)


PRESETS = {"paper": GlcfConfig, "small": _small, "tiny": _tiny, "edge": _edge}


def preset(name: str) -> GlcfConfig:
    """The named preset (`paper`, `small`, `tiny`, `edge`)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def with_backbone(cfg: GlcfConfig, kind: BackboneKind | str) -> GlcfConfig:
    """``cfg`` with Φ_L replaced by ``kind``; CNN taps are standardised per channel (DESIGN §2)."""
    try:
        kind = BackboneKind(kind)
    except ValueError:
        raise ConfigError(f"--backbone {kind!r}: choose one of "
                          f"{', '.join(k.value for k in BackboneKind)}") from None
    if kind is BackboneKind.SWIN:  # Swin-T as in the paper unless the config already sizes a Swin
        swin = cfg.model.backbone.kind is BackboneKind.SWIN
        backbone = cfg.model.backbone if swin else BackboneConfig()
    else:
        backbone = replace(cfg.model.backbone, kind=kind, standardize=True)
    model = replace(cfg.model, backbone=backbone)
    model.check()
    return replace(cfg, model=model)


def with_train(cfg: GlcfConfig, **changes: Any) -> GlcfConfig:
    """``cfg`` with some training fields replaced."""
    return replace(cfg, train=replace(cfg.train, **changes))


# --- dict / YAML form ---------------------------------------------------------------------


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain JSON/YAML values (enums by value, tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(cls: type, data: dict, where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``, checking every key and converting enums/tuples.

    Raises:
        ConfigError: unknown key or a value of the wrong kind; the message names ``where``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{where}.{name}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            choices = [m.value for m in hint]
            raise ConfigError(f"{where}: {value!r} is not one of {choices}") from None
    origin = getattr(hint, "__origin__", None)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    return value


def load_yaml(path: str | Path) -> GlcfConfig:
    """Read a YAML config written by :func:`save_yaml` (or by hand) into a :class:`GlcfConfig`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    base = preset(data.pop("preset", "paper")) if isinstance(data, dict) else None
    if base is None:
        raise ConfigError(f"{path}: expected a mapping at the top level")
    merged = _merge(to_dict(base), data)
    return from_dict(GlcfConfig, merged, where=str(path))


def save_yaml(cfg: GlcfConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
