"""`glcf bench --preset edge,paper`: each preset's fastest kept path and the ratio between them."""

from __future__ import annotations

from glcf_bench.presets import comparison_lines, fastest
from glcf_bench.report import BenchReport, BenchRow


def _report(rows: list[BenchRow], gflop: float) -> BenchReport:
    return BenchReport("now", {}, {}, {}, {}, {"gflop_per_image": gflop}, {}, rows=rows)


def test_fastest_kept_path_per_image_skips_torch_and_rank_breaking_rows() -> None:
    rows = [
        BenchRow("torch", 8, latency_p50_ms=8.0),  # fastest, but not a deployment path
        BenchRow("openvino-int8", 8, latency_p50_ms=16.0, spearman_vs_fp32=0.95),  # breaks ranks
        BenchRow("openvino-bf16", 8, latency_p50_ms=40.0, spearman_vs_fp32=0.999),  # 5 ms/image
        BenchRow("onnxruntime", 1, latency_p50_ms=6.0),  # 6 ms/image
        BenchRow("tensorrt", 1, runnable=False, reason="no GPU"),
    ]
    best = fastest("edge", _report(rows, 0.8))
    assert best is not None and (best.backend, best.batch, best.ms_per_image) == ("openvino-bf16", 8, 5.0)


def test_ratio_to_the_first_preset_and_a_preset_with_nothing_kept() -> None:
    edge = _report([BenchRow("onnxruntime", 1, latency_p50_ms=10.0)], 0.9)
    paper = _report([BenchRow("onnxruntime", 8, latency_p50_ms=800.0)], 28.0)
    none = _report([BenchRow("onnxruntime", 1, runnable=False, reason="x")], 1.0)
    lines = comparison_lines({"edge": edge, "paper": paper, "tiny": none})
    assert lines[0].startswith("edge: fastest path onnxruntime at batch 1, 10.0 ms per image")
    assert "1.00 × edge" in lines[0]
    assert "100.0 ms per image, 28.00 GFLOP per image, 10.00 × edge" in lines[1]
    assert lines[2].startswith("tiny: no path ran")
