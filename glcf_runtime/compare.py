"""Comparing ways of running the graph: every runner's outputs on a set of frames, the one rank
correlation of their scores, and the gate results ``glcf export`` recorded (``gates.json``).

``glcf export``'s checks and gates and ``glcf bench``'s accuracy column compare runners through
these, so a "Spearman vs FP32" figure means the same wherever it is printed. numpy only: a
runtime-only install has neither torch nor scipy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from glcf_runtime.artifacts import GATES_FILE
from glcf_runtime.errors import ConfigError

if TYPE_CHECKING:  # at run time a runner is used by its methods: no import of the backends here
    from glcf_runtime.backends.base import Runner


class Outputs(NamedTuple):
    """A runner's outputs on a set of frames, in the frames' order (copies, not its buffers)."""

    scores: np.ndarray  # float32 [N]
    maps: np.ndarray  # float32 [N, H, W]


def infer_all(runner: Runner, images: np.ndarray, batch: int | None = None) -> Outputs:
    """Run ``runner`` over every frame of ``images``, ``batch`` frames per inference.

    Args:
        runner: an open ``glcf_runtime.backends.base.Runner``.
        images: uint8 BGR ``[N, H, W, 3]`` (pre-processed); N may be 0.
        batch: frames per inference, >= 1; capped at the runner's ``max_batch``. None: all the
            frames at once, or ``max_batch`` at a time.

    Raises:
        ConfigError: ``batch`` below 1, or frames the runner refuses (``Runner.check_batch``).
    """
    if batch is not None and batch < 1:
        raise ConfigError(f"batch {batch}: give 1 or more frames per inference")
    limit = runner.max_batch
    step = min(x for x in (batch, limit, max(len(images), 1)) if x is not None)
    if len(images) == 0:
        meta = runner.metadata
        return Outputs(np.zeros(0, np.float32), np.zeros((0, meta.height, meta.width), np.float32))
    maps, scores = [], []
    for start in range(0, len(images), step):
        m, s = runner.infer(images[start : start + step])
        maps.append(np.array(m, copy=True))  # the backend may reuse its buffers on the next call
        scores.append(np.array(s, copy=True))
    return Outputs(np.concatenate(scores), np.concatenate(maps))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``values``; tied values share the mean of the ranks they span."""
    values = np.asarray(values, np.float64).ravel()
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(values)])
    ranks = np.empty(len(values), np.float64)
    ranks[order] = (first + (counts + 1) / 2.0)[group]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two score vectors (average ranks for ties, as
    ``scipy.stats.spearmanr``).

    Fewer than 3 values: 1.0 when both order them alike, else 0.0. Two vectors that rank the
    frames identically give 1.0, two constant ones included (where scipy gives NaN: two runs that
    tie every frame agree). NaN in either vector, or one constant vector against a varying one:
    NaN (no ranking to compare; a gate ``rho >= minimum`` then fails).
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"spearman: {len(a)} scores against {len(b)}; compare the same frames")
    if len(a) < 3:
        return 1.0 if np.array_equal(np.argsort(a), np.argsort(b)) else 0.0
    if np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    if np.array_equal(ra, rb):
        return 1.0
    ra, rb = ra - (len(a) + 1) / 2.0, rb - (len(b) + 1) / 2.0
    denominator = np.sqrt((ra @ ra) * (rb @ rb))
    return float((ra @ rb) / denominator) if denominator > 0 else float("nan")


def read_gates(folder: Path) -> dict[str, dict]:
    """The export's gate results (``gates.json``); empty when the folder has none (an older
    export).

    Raises:
        ConfigError: the file exists but cannot be read.
    """
    file = Path(folder) / GATES_FILE
    if not file.is_file():
        return {}
    try:
        gates = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file} cannot be read ({exc}); export the run again with glcf export "
                          "or delete the file (auto then uses FP32)") from None
    return gates if isinstance(gates, dict) else {}
