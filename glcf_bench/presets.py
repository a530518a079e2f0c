"""Several presets in one `glcf bench` run: each preset's fastest deployable path per image that
kept the FP32 graph's ranking, and its ratio to the others' (``--preset edge,paper``)."""

from __future__ import annotations

from dataclasses import dataclass

from glcf_bench.report import BenchReport, BenchRow

MIN_SPEARMAN = 0.99  # a reduced-precision row counts when its scores rank the frames as FP32 does
NOT_DEPLOYED = ("torch",)  # the runtime never runs torch: not a path a station can take


@dataclass(frozen=True)
class Fastest:
    """A preset's fastest kept path: ``ms_per_image`` is the p50 batch latency ÷ the batch."""

    preset: str
    backend: str
    batch: int
    ms_per_image: float
    gflop_per_image: float | None
    spearman_vs_fp32: float | None


def kept(row: BenchRow) -> bool:
    """A row that ran, is a deployment path, and ranks the frames as the FP32 graph does (FP32
    itself, whose Spearman against itself is 1, counts)."""
    if not row.runnable or row.latency_p50_ms is None or row.backend in NOT_DEPLOYED:
        return False
    return row.spearman_vs_fp32 is None or row.spearman_vs_fp32 >= MIN_SPEARMAN


def fastest(preset: str, report: BenchReport) -> Fastest | None:
    """The kept row with the lowest time per image, or None where no row was kept."""
    rows = [r for r in report.rows if kept(r)]
    if not rows:
        return None
    best = min(rows, key=lambda r: r.latency_p50_ms / r.batch)
    flops = (report.flops or {}).get("gflop_per_image")
    return Fastest(preset, best.backend, best.batch, best.latency_p50_ms / best.batch, flops,
                   best.spearman_vs_fp32)


def comparison_lines(reports: dict[str, BenchReport]) -> list[str]:
    """One line per preset, each with its ratio to the first preset's fastest path."""
    best = {name: fastest(name, report) for name, report in reports.items()}
    first = next(iter(best.values()), None)
    lines = []
    for name, b in best.items():
        if b is None:
            lines.append(f"{name}: no path ran and kept the FP32 ranking (Spearman ≥ {MIN_SPEARMAN})")
            continue
        ratio = f", {b.ms_per_image / first.ms_per_image:.2f} × {first.preset}" if first else ""
        gflop = f", {b.gflop_per_image:.2f} GFLOP per image" if b.gflop_per_image else ""
        lines.append(f"{name}: fastest path {b.backend} at batch {b.batch}, {b.ms_per_image:.1f} ms "
                     f"per image{gflop}{ratio}")
    return lines
