"""`train.loss_form`: MSE (paper), cosine distance (RD4AD) or their sum, without moving old hashes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from glcf_runtime.errors import ConfigError
from glcf_train.config import PRESETS, LossForm, load_yaml, preset, save_yaml, to_dict, with_train
from glcf_train.losses import distance, glcf_losses
from glcf_train.model import GLCF


def _old_hash(cfg) -> str:
    """The hash as computed before `train.loss_form` (and the other later fields) existed."""
    data = to_dict(cfg)
    del data["train"]["loss_form"], data["scoring"]["normalisation"]
    if data["model"]["backbone"]["kind"] == "swin":
        del data["model"]["backbone"]["kind"]
    if data["model"]["backbone"]["standardize"] is False:
        del data["model"]["backbone"]["standardize"]
    if data["train"]["shift_augment"] == 0:
        del data["train"]["shift_augment"]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_keep_their_hash_and_train_with_mse(name: str) -> None:
    cfg = preset(name)
    assert cfg.train.loss_form is LossForm.MSE
    assert cfg.hash() == _old_hash(cfg)
    assert with_train(cfg, loss_form=LossForm.COSINE).hash() != cfg.hash()


def _features(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, s, s, c, generator=gen) for s, c in ((8, 6), (4, 10), (2, 12))]


def test_mse_form_is_the_papers_mse() -> None:
    pred, target = _features(0), _features(1)
    expected = sum(F.mse_loss(p, t) for p, t in zip(pred, target, strict=True))
    assert torch.allclose(distance(pred, target, LossForm.MSE), expected)


def test_cosine_form_is_scale_free() -> None:
    pred, target = _features(0), _features(1)
    base = distance(pred, target, LossForm.COSINE)
    scaled = distance([10.0 * p for p in pred], [0.1 * t for t in target], LossForm.COSINE)
    assert torch.allclose(base, scaled, atol=1e-5)
    assert float(distance(target, target, LossForm.COSINE)) == pytest.approx(0.0, abs=1e-5)
    opposite = distance([-t for t in target], target, LossForm.COSINE)
    assert float(opposite) == pytest.approx(2.0 * len(target), abs=1e-4)  # 1 - (-1) per scale
    both = distance(pred, target, LossForm.MSE_COSINE)
    assert torch.allclose(both, distance(pred, target, LossForm.MSE) + base)


@pytest.mark.parametrize("form", list(LossForm))
def test_each_form_trains_every_decoder(form: LossForm) -> None:
    cfg = preset("tiny")
    model = GLCF(cfg.model)
    images = torch.randint(0, 256, (1, cfg.model.image_size, cfg.model.image_size, 3), dtype=torch.uint8)
    losses = glcf_losses(model(images), with_train(cfg, loss_form=form).train)
    assert torch.isfinite(losses.total)
    losses.total.backward()
    for part in model.trainable_parts().values():
        assert sum(float(p.grad.abs().sum()) for p in part.parameters() if p.grad is not None) > 0


def test_loss_form_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = with_train(preset("edge"), loss_form=LossForm.MSE_COSINE)
    save_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(tmp_path / "c.yaml") == cfg
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: edge\ntrain:\n  loss_form: l1\n")
    with pytest.raises(ConfigError, match=r"loss_form.*not one of"):
        load_yaml(bad)
    assert replace(cfg.train, loss_form=LossForm.MSE) == preset("edge").train
