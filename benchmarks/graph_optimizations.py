"""Before/after table of the graph optimisations: each variant exported, checked, counted and timed
(ONNX Runtime FP32, and the same module in torch eager) in interleaved rounds → JSON in results/.

python benchmarks/graph_optimizations.py                       # paper preset, random weights
python benchmarks/graph_optimizations.py runs/cable_pair --batch 1,8
python benchmarks/graph_optimizations.py --preset tiny --variants fused-scoring,separate-qkv --rounds 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from graph_variants import measure_variants, variant_names
from rich.console import Console
from rich.table import Table

from glcf_bench.machine import slug
from glcf_bench.settings import parse_batches

RESULTS = Path(__file__).resolve().parent / "results"


def table(report: dict) -> Table:
    batches = report["batches"]
    t = Table(title=f"graph variants: {report['model']}, {report['threads']} threads, "
                    f"MatMul peak {report['matmul_peak_gflops']:.0f} GFLOP/s")
    for col in ("variant", "nodes", "GFLOP", "map err", *(f"ORT b{b} p50 ms" for b in batches),
                *(f"% peak b{b}" for b in batches), "torch b1 p50 ms", "ORT/torch b1"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for row in report["variants"]:
        t.add_row(
            row["name"], str(row["nodes"]), f"{row['gflop']:.2f}", f"{row['map_err']:.1e}",
            *(f"{row[f'ort_b{b}_p50_ms']:.1f}" for b in batches),
            *(f"{row[f'ort_b{b}_pct_peak']:.0f}" for b in batches),
            f"{row['torch_b1_p50_ms']:.1f}" if "torch_b1_p50_ms" in row else "-",
            f"{row['ort_over_torch_b1']:.2f}" if "ort_over_torch_b1" in row else "-",
        )
    return t


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a trained run folder (default: --preset paper)")
    parser.add_argument("--preset", help="random-init preset (default: paper)")
    parser.add_argument("--variants", help="comma-separated subset (default: all, in order)")
    parser.add_argument("--batch", default="1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=3, help="timed runs per variant per round")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch eager timings")
    parser.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.run is not None and args.preset:
        parser.error("give a run folder or --preset, not both")
    console = Console(width=max(Console().width, 150))
    report = measure_variants(
        args.run, args.preset or (None if args.run else "paper"), variant_names(args.variants),
        parse_batches(args.batch), args.rounds, args.per_round, not args.no_torch, args.threads,
        log=console.print,
    )
    console.print(table(report))
    for row in report["variants"]:
        console.print(f"[bold]{row['name']}[/]: {row['change']}")
    args.out.mkdir(parents=True, exist_ok=True)
    name = slug(report["model"].split(" (")[0].replace("preset ", ""))
    cpu = slug(report["machine"].get("cpu", "cpu"))
    target = args.out / f"graph-optimizations_{name}_{cpu}_{report['threads']}t_{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {target}")


if __name__ == "__main__":
    main()
