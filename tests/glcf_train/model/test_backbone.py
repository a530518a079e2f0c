"""Φ_L weights: timm and original Swin layouts, safetensors and torch files, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from glcf_train.builder import build_model
from glcf_train.config import preset
from glcf_train.model.backbone import (
    LocalExtractor,
    WeightsError,
    build_swin,
    load_backbone_weights,
)

CFG = preset("tiny").model


def _reference_swin(seed: int = 1):
    torch.manual_seed(seed)
    swin = build_swin(CFG.backbone, CFG.image_size).eval()
    with torch.no_grad():
        for p in swin.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return swin


def _taps_of(swin, x):
    t0 = swin.patch_embed(x)
    t1 = swin.layers[1].downsample(swin.layers[0](t0))
    t2 = swin.layers[2].downsample(swin.layers[1].blocks(t1))
    t3 = swin.layers[3].downsample(swin.layers[2].blocks(t2))
    return [t0, t1, t2, t3]


def _to_original_layout(state: dict) -> dict:
    """The original Swin release puts patch merging at the end of a stage and names the head `head`."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", k)
        out[k.replace("head.fc.", "head.")] = v
    return out


@pytest.mark.parametrize("layout", ["timm-safetensors", "timm-pth", "original-pth"])
def test_weights_load_and_give_the_same_taps(tmp_path: Path, layout: str) -> None:
    swin = _reference_swin()
    state = {k: v.contiguous() for k, v in swin.state_dict().items()}
    if layout == "timm-safetensors":
        path = tmp_path / "model.safetensors"
        save_file(state, str(path))
    elif layout == "timm-pth":
        path = tmp_path / "model.pth"
        torch.save(state, path)
    else:
        path = tmp_path / "swin_tiny_original.pth"
        torch.save({"model": _to_original_layout(state)}, path)
    extractor = LocalExtractor(CFG.backbone, CFG.image_size)
    load_backbone_weights(extractor, CFG.backbone, CFG.image_size, path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for ours, ref in zip(extractor(x), _taps_of(swin, x), strict=True):
            torch.testing.assert_close(ours, ref)


def test_weights_of_another_size_are_refused(tmp_path: Path) -> None:
    other = build_swin(preset("small").model.backbone, 224)
    path = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    extractor = LocalExtractor(CFG.backbone, CFG.image_size)
    with pytest.raises(WeightsError, match=r"other shapes|do not fit"):
        load_backbone_weights(extractor, CFG.backbone, CFG.image_size, path)


def test_not_a_swin_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, path)
    extractor = LocalExtractor(CFG.backbone, CFG.image_size)
    with pytest.raises(WeightsError, match="lacks"):
        load_backbone_weights(extractor, CFG.backbone, CFG.image_size, path)


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a tensor file")
    extractor = LocalExtractor(CFG.backbone, CFG.image_size)
    with pytest.raises(WeightsError, match=r"broken\.safetensors"):
        load_backbone_weights(extractor, CFG.backbone, CFG.image_size, path)


def test_no_weights_names_both_ways(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # read at import time: patch it
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(WeightsError) as err:
        build_model(preset("paper"))
    message = str(err.value)
    assert "--backbone-weights" in message and "--random-init" in message
    with pytest.raises(WeightsError, match="no published ImageNet weights"):
        build_model(preset("tiny"))


def test_random_init_is_explicit_and_seeded() -> None:
    a, source = build_model(preset("tiny"), random_init=True)
    b, _ = build_model(preset("tiny"), random_init=True)
    assert source.source == "random-init" and source.sha256 is None
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
