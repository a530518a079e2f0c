"""The GLCF model: shapes for every preset, gradients, SAM variants and up-sampling kinds."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from glcf_train.config import BranchMode, SamVariant, UpsampleKind, preset
from glcf_train.losses import glcf_losses
from glcf_train.model import GLCF


def _images(n: int, size: int = 224, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)


def _tiny(variant: SamVariant = SamVariant.PSS, up: UpsampleKind = UpsampleKind.PATCH_EXPAND):
    cfg = preset("tiny")
    model = dataclasses.replace(
        cfg.model,
        bottleneck=dataclasses.replace(cfg.model.bottleneck, variant=variant),
        decoder=dataclasses.replace(cfg.model.decoder, upsample=up),
    )
    return dataclasses.replace(cfg, model=model)


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_shapes_every_preset(name: str) -> None:
    cfg = preset(name)
    torch.manual_seed(0)
    model = GLCF(cfg.model).eval()
    with torch.no_grad():
        taps = model.local_features(_images(1))
        f = model.from_taps(taps)
    c0 = cfg.model.backbone.embed_dim
    expected = [(1, 56, 56, c0), (1, 28, 28, 2 * c0), (1, 14, 14, 4 * c0)]
    assert [tuple(t.shape) for t in taps] == [*expected, (1, 7, 7, 8 * c0)]
    for branch in (f.phi_l, f.phi_g, f.psi_l, f.psi_g):
        assert [tuple(t.shape) for t in branch] == expected
        assert all(torch.isfinite(t).all() for t in branch)


def test_paper_sizes_match_design() -> None:
    cfg = preset("paper").model
    assert cfg.channels == (96, 192, 384, 768)
    assert cfg.bottleneck.dim == 240 and cfg.bottleneck.encoder_heads == 12
    assert cfg.bottleneck.decoder_heads == 16 and cfg.decoder.depths == (6, 2)
    assert cfg.bottleneck.variant is SamVariant.PSS


@pytest.mark.parametrize("variant", list(SamVariant))
@pytest.mark.parametrize("up", list(UpsampleKind))
def test_variants_train_a_step(variant: SamVariant, up: UpsampleKind) -> None:
    cfg = _tiny(variant, up)
    torch.manual_seed(0)
    model = GLCF(cfg.model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    images = _images(2)
    losses = glcf_losses(model(images), cfg.train)
    losses.total.backward()
    # every trainable tensor gets a gradient; Φ_L gets none and has no trainable weights
    for name, p in model.named_parameters():
        if name.startswith("phi_l."):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for part, module in model.trainable_parts().items():
        assert sum(float(p.grad.abs().sum()) for p in module.parameters()) > 0, part
    before = losses.total.item()
    opt.step()
    opt.zero_grad()
    after = glcf_losses(model(images), cfg.train).total.item()
    assert after < before


def test_backbone_stays_frozen_in_eval_mode() -> None:
    model = GLCF(preset("tiny").model)
    model.train()
    assert model.training and not model.phi_l.training
    assert all(not m.training for m in model.phi_l.modules())
    taps = model.local_features(_images(1))
    assert not any(t.requires_grad for t in taps)


def test_detach_global_target_stops_lg_into_phi_g() -> None:
    cfg = preset("tiny")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, loss_weights=(0.0, 0.0, 1.0),
                                                             detach_global_target=True))
    model = GLCF(cfg.model)
    glcf_losses(model(_images(1)), cfg.train).total.backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.phi_g.parameters())
    assert sum(float(p.grad.abs().sum()) for p in model.psi_g.parameters()) > 0


@pytest.mark.parametrize("mode", list(BranchMode))
def test_branch_modes_compute_only_what_they_need(mode: BranchMode) -> None:
    model = GLCF(preset("tiny").model).eval()
    with torch.no_grad():
        f = model(_images(1), mode)
    assert (f.psi_l is None) == (mode is BranchMode.GLOBAL)
    assert (f.phi_g is None) == (mode is BranchMode.LOCAL)
    assert (f.psi_g is None) == (mode is BranchMode.LOCAL)


def test_normalizer_matches_imagenet_rgb() -> None:
    model = GLCF(preset("tiny").model)
    bgr = torch.tensor([[[[10, 128, 250]]]], dtype=torch.uint8)  # B, G, R
    x = model.normalize(bgr)[0, :, 0, 0]
    rgb = torch.tensor([250, 128, 10]) / 255.0
    expected = (rgb - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x, expected)
