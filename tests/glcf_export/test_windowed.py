"""The window-order Swin blocks compute exactly what timm's blocks compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.models.swin_transformer import PatchMerging

from glcf_export.windowed import StaticPatchMerging, WindowedBlocks, window_order
from glcf_train.model.decoder import _swin_blocks


def _blocks(dim: int, grid: int, depth: int, heads: int) -> torch.nn.Sequential:
    torch.manual_seed(0)
    seq = _swin_blocks(dim, grid, depth, heads, 7).eval()
    for block in seq:  # a non-zero relative-position bias, so that a wrong bias cannot pass
        torch.nn.init.normal_(block.attn.relative_position_bias_table, std=1.0)
    return seq


def test_window_order_is_timm_partition_of_the_rolled_map() -> None:
    order = window_order(14, 14, 7, 0)
    assert sorted(order) == list(range(196))
    assert list(order[:8]) == [0, 1, 2, 3, 4, 5, 6, 14]  # first window, row-major inside
    assert order[49] == 7  # second window starts at column 7
    shifted = window_order(14, 14, 7, 3)
    grid = np.arange(196).reshape(14, 14)
    rolled = np.roll(grid, shift=(-3, -3), axis=(0, 1))  # timm: torch.roll(x, -shift)
    assert list(shifted[:7]) == list(rolled[0, :7])


@pytest.mark.parametrize(("dim", "grid", "depth", "heads"), [(32, 28, 2, 2), (64, 14, 4, 4), (128, 7, 2, 4)])
def test_same_function_as_timm_blocks(dim: int, grid: int, depth: int, heads: int) -> None:
    seq = _blocks(dim, grid, depth, heads)
    x = torch.randn(3, grid, grid, dim)
    with torch.no_grad():
        expected = seq(x)
        got = WindowedBlocks(seq)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=2e-5, rtol=1e-5)


def test_shift_mask_and_gathers_are_needed() -> None:
    """Dropping the shift mask changes the output: the equality above is not vacuous."""
    seq = _blocks(32, 14, 2, 2)
    fast = WindowedBlocks(seq)
    # [nH, 1, nW, N, N]: the first window's bias (no seam in it) for every window, i.e. no mask
    fast.blocks[1].logits_bias = fast.blocks[1].logits_bias[:, :, :1].clone()
    x = torch.randn(1, 14, 14, 32)
    with torch.no_grad():
        assert not torch.allclose(fast(x), seq(x), atol=1e-3)
    assert fast.moves == [True, True, True]
    assert WindowedBlocks(_blocks(32, 7, 2, 2)).moves == [False, False, False]  # one window


def test_grid_not_divisible_by_window_is_refused() -> None:
    seq = _swin_blocks(32, 12, 2, 2, 7)
    with pytest.raises(ValueError, match="not divisible by the 7-token window"):
        WindowedBlocks(seq)


def test_static_patch_merging_matches_timm() -> None:
    torch.manual_seed(0)
    merge = PatchMerging(32).eval()
    x = torch.randn(2, 14, 14, 32)
    with torch.no_grad():
        assert torch.allclose(StaticPatchMerging(merge)(x), merge(x), atol=1e-6)
    with pytest.raises(ValueError, match="even grid"):
        StaticPatchMerging(merge)(torch.randn(1, 7, 7, 32))
