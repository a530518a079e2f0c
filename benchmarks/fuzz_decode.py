"""Longer fuzz run of image decoding and pre-processing than the seeded test in CI.

Random byte mutations of real PNG, JPEG, BMP, TIFF and WebP files (flipped, cut, inserted, zeroed
and repeated bytes, extreme header values, headers declaring more pixels than the limit) go
through the whole inspection loop (folder source → decode → pre-process → frame health → ONNX
Runtime → JSON lines) with the tiny contract model. Every case must be scored or get an error
record, in order, and every oversized header must be refused for its size; the slowest case is
reported, so a decoder that stalls on a damaged header shows up.

    python benchmarks/fuzz_decode.py --cases 20000 --seeds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from glcf_bench.fixtures.contract_model import write_model
from glcf_bench.fixtures.fuzz import run_fuzz
from glcf_bench.machine import machine_info, slug, versions
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.files import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20000, help="mutated files per seed")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    parser.add_argument("--batch", type=int, default=8, help="frames per inference")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result file")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, OnnxRuntimeRunner(
        write_model(Path(tmp) / "model"), threads=1
    ) as runner:
        for seed in range(args.seeds):
            result = run_fuzz(runner, Path(tmp) / f"seed{seed}", args.cases, seed, args.batch)
            rows.append({"seed": seed, **result.__dict__})
            print(f"seed {seed}: {result.cases} cases, {result.scored} scored, "
                  f"{result.errors} error records ({result.oversized} oversized headers), "
                  f"{result.seconds:.1f} s, slowest "
                  f"{result.slowest_ms:.1f} ms", flush=True)
    machine = machine_info()
    report = {"what": "fuzz_decode", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": machine, "versions": versions(), "runs": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"fuzz-decode_{slug(machine['cpu'])}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    atomic_write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
