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
