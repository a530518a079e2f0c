"""Training throughput of one process against several at once (what `glcf demo`'s default
`--jobs` rests on): an `edge` training step (bottleneck and decoders on cached Φ_L taps, batch 8,
AdamW) timed in 1 process with every core's thread, and in k processes at once with
cores // k threads each (at least 1), the layouts taking turns in rounds.

    python benchmarks/train_processes.py --steps 40 --rounds 2

Per layout: ms per step in each process, and the effective ms per step (the slowest process's
time over all processes' steps) with its speed-up over one process. Writes JSON to results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from glcf_bench.machine import machine_info, matmul_peak_gflops, slug
from glcf_runtime.backends.base import cpu_cores


def worker(threads: int, steps: int) -> None:
    """Set up, say ``ready``, wait for ``go`` on stdin, run ``steps`` steps, print ms per step."""
    import torch

    from glcf_train.builder import build_model
    from glcf_train.config import preset
    from glcf_train.losses import glcf_losses

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = preset("edge")
    model, _ = build_model(cfg, random_init=True)
    images = torch.randint(0, 256, (32, 224, 224, 3), dtype=torch.uint8)
    taps = model.fit_standardization(images, keep=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    model.train()

    def step() -> None:
        index = torch.randint(0, len(images), (cfg.train.batch_size,))
        optimizer.zero_grad(set_to_none=True)
        losses = glcf_losses(model(None, taps=[t[index] for t in taps]), cfg.train)
        losses.total.backward()
        optimizer.step()

    for _ in range(3):
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"ms_per_step": (time.perf_counter() - start) / steps * 1000.0}), flush=True)


def layout(processes: int, threads: int, steps: int) -> dict:
    """``processes`` workers at once, started together once all are set up."""
    cmd = [sys.executable, __file__, "--worker", str(threads), "--steps", str(steps)]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"a worker failed to start (exit code {p.wait()})")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    each = [json.loads(p.stdout.readline())["ms_per_step"] for p in procs]
    for p in procs:
        p.wait()
    return {"processes": processes, "threads": threads, "ms_per_step": [round(v, 1) for v in each],
            "effective_ms_per_step": round(max(each) / processes, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", default="1,2,3", help="layouts, comma-separated")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.steps)
        return
    cores = cpu_cores()
    rows = []
    for repeat in range(args.rounds):
        for k in (int(v) for v in args.processes.split(",")):
            row = {"round": repeat, **layout(k, max(1, cores // k), args.steps)}
            rows.append(row)
    base = {r["round"]: r["effective_ms_per_step"] for r in rows if r["processes"] == 1}
    for row in rows:
        if row["round"] in base:
            row["speed_up"] = round(base[row["round"]] / row["effective_ms_per_step"], 2)
        print(f"round {row['round']}: {row['processes']} process(es) x {row['threads']} "
              f"thread(s): {row['ms_per_step']} ms/step each, effective "
              f"{row['effective_ms_per_step']} ms/step" +
              (f" ({row['speed_up']}x one process)" if "speed_up" in row else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    peak = round(matmul_peak_gflops(cores), 1)  # the shared machine's speed at the time
    print(f"{machine['cpu']}, {cores} cores; FP32 MatMul peak {peak} GFLOP/s")
    target = args.out / (f"train-processes_edge_{slug(machine['cpu'])}_{cores}c_"
                         f"{time.strftime('%Y%m%d-%H%M%S')}.json")
    target.write_text(json.dumps({"machine": machine, "matmul_peak_gflops": peak,
                                  "steps": args.steps, "rows": rows}, indent=2))
    print(f"results: {target}")


if __name__ == "__main__":
    main()
