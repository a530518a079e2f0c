"""Configs: presets, YAML round trip, clear errors, the config hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from glcf_runtime.errors import ConfigError
from glcf_train.config import (
    GlcfConfig,
    SamVariant,
    UpsampleKind,
    load_yaml,
    preset,
    save_yaml,
    with_train,
)


@pytest.mark.parametrize("name", ["paper", "small", "tiny"])
def test_yaml_round_trip(tmp_path: Path, name: str) -> None:
    cfg = preset(name)
    save_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(tmp_path / "c.yaml") == cfg


def test_partial_yaml_overrides_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\nmodel:\n  bottleneck:\n    variant: ps\n  decoder:\n"
                    "    upsample: dual\ntrain:\n  lr: 0.0005\n")
    cfg = load_yaml(path)
    assert cfg.preset == "tiny" and cfg.model.bottleneck.variant is SamVariant.PS
    assert cfg.model.decoder.upsample is UpsampleKind.DUAL and cfg.train.lr == 0.0005
    assert cfg.model.backbone == preset("tiny").model.backbone


@pytest.mark.parametrize(("text", "message"), [
    ("train:\n  learning_rate: 1\n", "unknown key"),
    ("model:\n  bottleneck:\n    variant: psx\n", "not one of"),
    ("- a list\n", "mapping"),
    ("preset: huge\n", "unknown preset"),
])
def test_bad_yaml_names_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_yaml(path)


def test_hash_tracks_changes() -> None:
    a = preset("tiny")
    assert a.hash() == preset("tiny").hash()
    assert a.hash() != with_train(a, lr=0.5).hash()
    assert GlcfConfig().preset == "paper"


def test_paper_training_defaults() -> None:
    t = preset("paper").train
    assert (t.lr, t.betas, t.batch_size, t.epochs, t.lr_drop_at, t.lr_drop) == (
        1e-4, (0.9, 0.95), 8, 500, 0.6, 0.1)


def test_normalisation_option_keeps_old_hashes() -> None:
    """Runs trained before `scoring.normalisation` existed keep their hash (and calibration);
    choosing `position` in a training config changes it."""
    import hashlib
    import json
    from dataclasses import replace

    from glcf_train.config import Normalisation, preset, to_dict

    cfg = preset("tiny")
    old_form = to_dict(cfg)
    del old_form["scoring"]["normalisation"]
    del old_form["model"]["backbone"]["kind"], old_form["model"]["backbone"]["standardize"]
    del old_form["train"]["loss_form"], old_form["train"]["shift_augment"]
    old_hash = hashlib.sha256(json.dumps(old_form, sort_keys=True).encode()).hexdigest()[:16]
    assert cfg.hash() == old_hash
    position = replace(cfg, scoring=replace(cfg.scoring, normalisation=Normalisation.POSITION))
    assert position.hash() != cfg.hash()
