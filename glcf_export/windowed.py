"""Deploy form of the Swin blocks: the same function as timm's, as a faster graph (DESIGN §4).

timm's :class:`SwinTransformerBlock` rolls the feature map, pads it, cuts it into windows, runs
attention, then reverses all three, in every block. In the graph that is two Slice+Concat pairs,
a Pad with shape arithmetic and two 6-D Transposes per block, plus the relative-position bias
gathered from its table on every call. Everything in a block except attention works token by
token, so the order of the tokens does not matter between attentions. :class:`WindowedBlocks`
therefore keeps the tokens in window order: one constant-index Gather moves them from one block's
(shifted) windows to the next block's, and one more back to row-major order at the end. The
relative-position bias and the shift mask are one constant added to the attention logits, and the
``1/sqrt(d)`` scale is folded into the query weights. Token tensors stay 3-D — ``[B·windows, N, C]``
in attention, ``[B, T, C]`` elsewhere — which ran 2-3 % faster in ONNX Runtime than the same
linear layers as 2-D Gemms.

The attention is one MatMul for Q, K and V against plain 2-D ``[C, 3C]`` weights, then one
Transpose puts the heads outermost: ``[B·T, 3·nH, hd]`` → ``[3·nH, B·T, hd]``, so Q, K and V are
``[nH, B, nW, N, hd]`` views with no further copy; ONNX Runtime folds the Kᵀ into its MatMul, and
only the attention output is transposed back to ``[B·T, C]``. Plain 2-D weights matter: OpenVINO
turns a MatMul with constant weights into its FullyConnected node, which refuses a weight that
broadcasts over a batch of heads when the batch is dynamic. The forms this one was measured
against live beside their benchmark (``benchmarks/graph_variants``).
"""

from __future__ import annotations

import numpy as np
import torch
from timm.models.swin_transformer import SwinTransformerBlock
from torch import nn


def window_order(height: int, width: int, window: int, shift: int) -> np.ndarray:
    """Row-major token index of each position in the (shifted) window order timm attends in.

    Position ``j`` enumerates the windows row-major and the tokens inside each window row-major;
    the shift is timm's cyclic roll by ``-shift`` on both axes.
    """
    wr, wc, i, k = np.meshgrid(np.arange(height // window), np.arange(width // window),
                               np.arange(window), np.arange(window), indexing="ij")
    rows = (wr * window + i + shift) % height
    cols = (wc * window + k + shift) % width
    return (rows * width + cols).reshape(-1)


class WindowAttentionBlock(nn.Module):
    """One timm Swin block on tokens ``[B, T, C]`` that are already in its window order."""

    def __init__(self, block: SwinTransformerBlock, tokens: int) -> None:
        super().__init__()
        self.tokens = tokens
        attn = block.attn
        self.heads = attn.num_heads
        self.area = attn.window_area
        dim = attn.qkv.in_features
        self.dim = dim
        self.norm1, self.norm2 = block.norm1, block.norm2
        self.mlp, self.proj = block.mlp, attn.proj
        self.qkv = nn.Linear(dim, 3 * dim)  # rows: (q, k, v) × heads × head dim, as in timm
        with torch.no_grad():
            self.qkv.weight.copy_(attn.qkv.weight)
            self.qkv.bias.copy_(attn.qkv.bias)
            self.qkv.weight[:dim] *= attn.scale  # 1/sqrt(d) folded into the query
            self.qkv.bias[:dim] *= attn.scale
            logits_bias = attn._get_rel_pos_bias()  # [1, nH, N, N]
            mask = block.attn_mask
            if mask is not None:  # [nW, N, N], 0 or -100 across shifted-window seams
                logits_bias = logits_bias + mask.unsqueeze(1)
            # [nW or 1, nH, N, N] → [nH, 1, nW or 1, N, N]: heads outermost, like the logits
            logits_bias = logits_bias.transpose(0, 1).unsqueeze(1)
        self.register_buffer("logits_bias", logits_bias.contiguous(), persistent=False)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, C]`` → attention output ``[B, T, C]``, computed per window."""
        n, h = self.area, self.heads
        hd = self.dim // h
        windows = self.logits_bias.shape[2]
        qkv = self.qkv(x).reshape(-1, 3 * h, hd).transpose(0, 1)  # [3·nH, B·T, hd]
        q, k, v = qkv.reshape(3, h, -1, windows, n, hd).unbind(0)  # [nH, B, nW, N, hd] each
        logits = q @ k.transpose(-2, -1) + self.logits_bias  # [nH, B, nW, N, N]
        out = logits.softmax(dim=-1) @ v  # [nH, B, nW, N, hd]
        out = out.reshape(h, -1, hd).transpose(0, 1).reshape(-1, self.tokens, self.dim)
        return self.proj(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, C]`` in this block's window order → same shape and order."""
        x = x + self._attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class WindowedBlocks(nn.Module):
    """A sequence of timm Swin blocks on ``[B, H, W, C]`` NHWC, tokens kept in window order.

    Exactly the function of ``nn.Sequential(*blocks)`` for a grid divisible by the window.
    ``block``: the module each Swin block becomes (the benchmark passes its other attention forms).
    """

    def __init__(self, blocks: nn.Sequential | list[SwinTransformerBlock],
                 block: type[WindowAttentionBlock] = WindowAttentionBlock) -> None:
        super().__init__()
        blocks = list(blocks)
        if not blocks:
            raise ValueError("WindowedBlocks needs at least one Swin block")
        height, width = blocks[0].input_resolution
        window = blocks[0].window_size[0]
        if height % window or width % window:
            raise ValueError(f"a {height}x{width} grid is not divisible by the {window}-token window; "
                             "export at an image size that is a multiple of 32 x window/7")
        self.height, self.width = height, width
        self.blocks = nn.ModuleList(block(b, height * width) for b in blocks)
        orders = [window_order(height, width, window, b.shift_size[0]) for b in blocks]
        steps, current = [], np.arange(height * width)  # current[j] = row-major index at position j
        for order in [*orders, np.arange(height * width)]:
            inverse = np.argsort(current)
            steps.append(torch.from_numpy(inverse[order]).long())
            current = order
        self.channels = self.blocks[0].dim
        # A step that is the identity (a one-window grid) is left out of the graph.
        self.moves = [not torch.equal(index, torch.arange(len(index))) for index in steps]
        for i, index in enumerate(steps):
            self.register_buffer(f"gather{i}", index, persistent=False)

    def _gather(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return x.index_select(1, getattr(self, f"gather{i}")) if self.moves[i] else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, c = self.height * self.width, self.channels
        x = x.reshape(-1, tokens, c)
        for i, block in enumerate(self.blocks):
            x = block(self._gather(x, i))
        return self._gather(x, len(self.blocks)).reshape(-1, self.height, self.width, c)


class StaticPatchMerging(nn.Module):
    """timm's patch merging for an even grid: the same function without its shape-dependent Pad."""

    def __init__(self, merge: nn.Module) -> None:
        super().__init__()
        self.norm, self.reduction = merge.norm, merge.reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, c = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"patch merging needs an even grid, got {h}x{w}")
        x = x.reshape(-1, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(-1, h // 2, w // 2, 4 * c)
        return self.reduction(self.norm(x))
