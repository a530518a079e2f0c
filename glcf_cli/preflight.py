"""Checks every command makes on its options before any work: batch sizes and the threshold rule.

(Outputs are checked where they are written, by ``glcf_runtime.sinks.check_writable``.)
No torch here: ``glcf inspect`` and ``glcf threshold`` run on a runtime-only install.
"""

from __future__ import annotations

import json
from pathlib import Path

from glcf_runtime.errors import ConfigError


def check_batch(value: int, option: str = "--batch", model: Path | None = None) -> int:
    """``value`` when it is a usable batch size: >= 1, and no larger than the batch the export
    of ``model`` (an export folder or a file in one) was checked or built for.

    Raises:
        ConfigError: naming the option, the value, the limit and the fix.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{option} {value}: give a batch size of 1 or more, e.g. 8")
    limit = checked_batch(model) if model is not None else None
    if limit is not None and value > limit[0]:
        largest, source = limit
        engine = Path(source).name.endswith(".engine.json")
        what = "this engine was built" if engine else "this export was checked"
        again = (f"glcf engine build MODEL_DIR --batch 1,{value} --overwrite" if engine
                 else f"glcf export RUN --out DIR --batch {value}")
        raise ConfigError(
            f"{option} {value}: {what} for batches up to {largest} ({source}); give {option} "
            f"{largest} or less, or make it for larger batches: {again}")
    return value


def check_batches(text: str, option: str = "--batch", model: Path | None = None) -> tuple[int, ...]:
    """Comma-separated batch sizes (``"1,8"``, parsed by ``glcf_bench.settings.parse_batches``),
    each checked by :func:`check_batch`."""
    from glcf_bench.settings import parse_batches

    return parse_batches(text, option, lambda value: check_batch(value, option, model))


def checked_batch(model: Path) -> tuple[int, str] | None:
    """The largest batch ``model``'s export was checked for (``export_report.json``'s ``batch``;
    for an engine, its sidecar's profile) and where that is recorded; None where nothing records
    one (a bare file, an older export, a preset).

    Raises:
        ConfigError: the record exists but cannot be read.
    """
    from glcf_runtime.artifacts import EXPORT_REPORT

    path = Path(model)
    if path.suffix == ".engine":
        return _engine_batch(path)
    report = (path if path.is_dir() else path.parent) / EXPORT_REPORT
    if not report.is_file():
        return None
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{report} cannot be read ({exc}); export the run again (glcf export) "
                          "or delete the file") from None
    batch = data.get("batch") if isinstance(data, dict) else None
    if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
        return batch, str(report)
    return None


def _engine_batch(engine: Path) -> tuple[int, str] | None:
    """The engine's profile maximum from its sidecar (the runner reports a missing sidecar)."""
    from glcf_runtime.backends.tensorrt.sidecar import read_sidecar, sidecar_path

    if not sidecar_path(engine).is_file():
        return None
    profile = read_sidecar(engine).get("profile")
    shapes = list(profile.values()) if isinstance(profile, dict) else []
    largest = shapes[0].get("max") if shapes and isinstance(shapes[0], dict) else None
    if isinstance(largest, list) and largest and isinstance(largest[0], int):
        return largest[0], str(sidecar_path(engine))
    return None


def check_threshold_rule(quantile: float, margin: float) -> None:
    """The normal-quantile rule's options, by the rule's own check
    (``calibration.threshold.check_normal_rule``).

    Raises:
        ConfigError: a quantile outside [0.5, 1) or a margin outside [0, MAX_MARGIN] (NaN
            included), named as the flag (``--quantile 2.0: …``).
    """
    from calibration.threshold import check_normal_rule

    try:
        check_normal_rule(quantile, margin)
    except ValueError as exc:
        raise ConfigError(f"--{exc}") from None
