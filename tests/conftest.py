"""Shared fixtures: a small synthetic data set written once per session (real PNGs on disk)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests skip with their reason where PyTorch sees no CUDA device."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none is visible here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic category in the MVTec LOCO layout: 6 train, 4 validation, 2 per test kind."""
    from glcf_train.data.synth import generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, ["breakfast_tray"], n_train=6, n_val=4, n_test=2, seed=0, image_size=256)
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """A tiny run trained briefly (enough to spread the scores), not calibrated. Do not modify."""
    from glcf_train.config import preset, with_train
    from glcf_train.train import TrainOptions, train

    out = tmp_path_factory.mktemp("trained") / "run"
    cfg = with_train(preset("tiny"), steps=60, batch_size=4)
    train(TrainOptions(out=out, data=synth_root, category="breakfast_tray", config=cfg,
                       random_init=True, progress=False))
    return out


@pytest.fixture(scope="session")
def calibrated_run(tmp_path_factory: pytest.TempPathFactory, trained_run: Path) -> Path:
    """A copy of ``trained_run`` with calibration.json. Do not modify."""
    import shutil

    from glcf_train.calibrate import calibrate_run

    out = tmp_path_factory.mktemp("calibrated") / "run"
    shutil.copytree(trained_run, out)
    calibrate_run(out, device="cpu", progress=False)
    return out
