"""Graph variants: all the same function; the benchmark behind the before/after table runs."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
import torch

from benchmarks.graph_variants import measure_variants
from benchmarks.graph_variants.forms import (
    VARIANTS,
    BroadcastHeadsBlock,
    FusedQkvBlock,
    LiteralScorer,
    SeparateQkvBlock,
    build_variant,
    variant,
)
from glcf_export.onnx_export import export_fp32
from glcf_export.windowed import WindowedBlocks
from glcf_train.builder import build_model
from glcf_train.config import BranchMode, preset
from glcf_train.model.decoder import _swin_blocks
from glcf_train.scoring import FusionStats, TorchScorer

STATS = FusionStats(((0.1, 0.2, 0.3), (0.4, 0.5, 0.6)), ((1.5, 2.0, 3.0), (0.5, 0.7, 0.9)))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = preset("tiny")
    model, _ = build_model(cfg, random_init=True)
    return model.eval(), cfg


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / (b.max() - b.min()))


@pytest.mark.parametrize("v", VARIANTS, ids=[v.name for v in VARIANTS])
def test_every_variant_is_the_reference_model(tiny, v) -> None:
    model, cfg = tiny
    scorer = TorchScorer(cfg.scoring, cfg.model.image_size, STATS)
    x = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.no_grad():
        ref_map, ref_score = scorer(model(x))
        got_map, got_score = build_variant(v, model, scorer, STATS)(x)
    assert _rel(got_map, ref_map) < 1e-5
    assert torch.allclose(got_score, ref_score, rtol=1e-5)


@pytest.mark.parametrize("block", [FusedQkvBlock, SeparateQkvBlock, BroadcastHeadsBlock])
def test_attention_forms_are_timm_blocks(block) -> None:
    torch.manual_seed(0)
    seq = _swin_blocks(64, 14, 2, 4, 7).eval()
    for b in seq:  # a non-zero relative-position bias, so that a wrong bias cannot pass
        torch.nn.init.normal_(b.attn.relative_position_bias_table, std=1.0)
    x = torch.randn(3, 14, 14, 64)
    with torch.no_grad():
        assert torch.allclose(WindowedBlocks(seq, block)(x), seq(x), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", list(BranchMode))
def test_literal_scorer_equals_reordered_scorer(tiny, mode: BranchMode) -> None:
    from dataclasses import replace

    model, cfg = tiny
    scorer = TorchScorer(replace(cfg.scoring, branch_mode=mode), cfg.model.image_size, STATS)
    with torch.no_grad():
        features = model(torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8), mode)
        ref_map, ref_score = scorer(features)
        got_map, got_score = LiteralScorer(scorer, STATS)(features)
    assert _rel(got_map, ref_map) < 1e-5
    assert torch.allclose(got_score, ref_score, rtol=1e-5)


def test_exported_graph_has_no_per_block_shape_work(tiny, tmp_path: Path) -> None:
    """The window-order graph has no roll (Slice/Concat), Pad or shape arithmetic in its Swin stages."""
    model, cfg = tiny
    scorer = TorchScorer(cfg.scoring, cfg.model.image_size, STATS)
    counts, graphs = {}, {}
    for name in ("fused-scoring", "separate-qkv", "heads-outermost"):
        graphs[name] = graph = export_fp32(build_variant(variant(name), model, scorer, STATS), tmp_path / f"{name}.onnx", 224)
        counts[name] = collections.Counter(
            n.op_type for n in graph.graph.node if n.name.startswith(("/phi_l/stage", "/psi_l/blocks")))
    before, after = counts["fused-scoring"], counts["separate-qkv"]
    assert before["Pad"] > 0 and before["Slice"] > 0
    for op in ("Pad", "Slice", "Concat", "Shape", "Mod"):
        assert after[op] == 0 and counts["heads-outermost"][op] == 0, (op, counts)
    assert sum(after.values()) < sum(before.values()) / 2
    # Heads outermost: one Transpose of the QKV rows [B·T, 3·nH, hd] → [3·nH, B·T, hd], Kᵀ (the
    # last two axes, which ONNX Runtime and TensorRT fold into the MatMul) and the output's
    # [nH, B·T, hd] → [B·T, nH, hd].
    head_major = [n for n in graphs["heads-outermost"].graph.node
                  if n.op_type == "Transpose" and n.name.startswith(("/phi_l/stage", "/psi_l/blocks"))]
    perms = {tuple(n.attribute[0].ints) for n in head_major}
    assert perms <= {(0, 1, 2, 4, 3), (1, 0, 2)}, perms
    assert len(head_major) < after["Transpose"]
    for node in graphs["heads-outermost"].graph.node:  # plain 2-D projection weights (OpenVINO)
        if node.op_type == "MatMul" and node.name.startswith("/phi_l/stage"):
            weights = [i for i in graphs["heads-outermost"].graph.initializer if i.name in node.input]
            assert all(len(w.dims) == 2 for w in weights), node.name


def test_unknown_variant_is_named() -> None:
    with pytest.raises(ValueError, match="choose from traced"):
        variant("fastest")


def test_measure_variants_smoke(tmp_path: Path) -> None:
    report = measure_variants(preset_name="tiny", names=["traced", "separate-qkv"], rounds=1,
                              per_round=1, log=lambda _: None)
    json.dumps(report)  # JSON-ready
    rows = {r["name"]: r for r in report["variants"]}
    assert set(rows) == {"traced", "separate-qkv"}
    for row in rows.values():
        assert row["map_err"] < 1e-4 and row["score_err"] < 1e-4
        assert row["ort_b1_p50_ms"] > 0 and row["torch_b1_p50_ms"] > 0 and 0 < row["ort_b1_pct_peak"] < 100
    assert rows["separate-qkv"]["nodes"] < rows["traced"]["nodes"] / 2
    assert rows["separate-qkv"]["gflop"] <= rows["traced"]["gflop"]
    assert report["matmul_peak_gflops"] > 0
    with pytest.raises(ValueError, match="unknown variants"):
        measure_variants(preset_name="tiny", names=["nope"])


def test_measure_variants_on_a_run(trained_run: Path) -> None:
    report = measure_variants(trained_run, names=["separate-qkv"], rounds=1, per_round=1,
                              with_torch=False, log=lambda _: None)
    (row,) = report["variants"]
    assert report["model"] == f"run {trained_run}" and row["map_err"] < 1e-4
    assert "torch_b1_p50_ms" not in row
