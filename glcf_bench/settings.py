"""What ``glcf bench`` runs: the model (a preset when there is no folder), the backends, batch
sizes, timing and rounds. One frozen dataclass: ``run_bench`` takes it, the ``glcf bench`` options
and the ``benchmarks/`` scripts build it, and the command's defaults are its field defaults."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from glcf_bench.frames import FRAME_SIZE
from glcf_runtime.artifacts import RUN_MODES
from glcf_runtime.errors import ConfigError

TORCH_ROW = "torch"  # the trained modules + scorer, eager (FP32 on CPU, FP16 autocast on CUDA)
# The rows glcf bench can run: torch, then the export folder's run modes (glcf_runtime.artifacts).
BENCH_ROWS = (TORCH_ROW, *RUN_MODES)


@dataclass(frozen=True)
class BenchSettings:
    """What to run. ``backends`` and ``batches`` also take comma-separated text or lists (parsed
    here, as the command line gives them); out-of-range values raise ``ConfigError``."""

    backends: tuple[str, ...] = BENCH_ROWS  # torch, then every run mode
    batches: tuple[int, ...] = (1, 8)
    preset: str | None = None  # a randomly initialised preset instead of a folder (paper, edge, …)
    warmup: int = 3  # untimed batches per backend, batch size and round
    min_time: float = 5.0  # seconds of timed batches per backend and batch size (>= MIN_RUNS)
    rounds: int = 3  # the backends take turns this many times; min_time is shared among them
    threads: int | None = None  # CPU threads for torch, ONNX Runtime and the MatMul peak
    # (None: one per physical core; run_bench fills it in, and the report records the number)
    loop: bool = True  # also time the camera loop over a video, on the runtime's backends
    loop_frames: int = 300  # frames of the 1280x720 test video for the loop
    cuda_graphs: bool = False  # torch on CUDA: replay CUDA graphs
    pairs: int = 10  # batches alternating with torch, per backend and batch size (0: none)
    profile: bool = False  # also the per-stage profile of every CPU run mode (glcf_bench.profile)

    def __post_init__(self) -> None:
        object.__setattr__(self, "backends", parse_backends(self.backends))
        object.__setattr__(self, "batches", parse_batches(self.batches))
        if (self.warmup < 0 or self.min_time < 0 or self.pairs < 0 or self.loop_frames < 1
                or self.rounds < 1 or (self.threads is not None and self.threads < 1)):
            raise ConfigError("--warmup, --min-time and --pairs must be >= 0; --threads, --rounds "
                              "and --loop-frames >= 1")

    def to_dict(self) -> dict:
        """The report's ``settings`` (the preset is in its ``target``)."""
        settings = asdict(self)
        del settings["preset"]
        return {**settings, "backends": list(self.backends),
                "frame_size": list(FRAME_SIZE)}


def parse_backends(text: str | Sequence[str]) -> tuple[str, ...]:
    """Comma-separated row names (``"torch,onnxruntime"``) or a sequence of them: ``BENCH_ROWS``."""
    names = tuple(n.strip() for n in (text.split(",") if isinstance(text, str) else text))
    if any(n not in BENCH_ROWS for n in names if n):
        raise ConfigError(f"--backends {text!r}: choose from {', '.join(BENCH_ROWS)}")
    return tuple(n for n in names if n)


def parse_batches(text: str | Sequence[int], option: str = "--batch",
                  check: Callable[[int], object] | None = None) -> tuple[int, ...]:
    """Comma-separated batch sizes (``"1,8"``) or a sequence of them, each >= 1.

    Args:
        text: what ``option`` was given.
        option: the option named in the errors.
        check: called on each size instead of the >= 1 test (the CLI's ``check_batch`` also
            holds it to the batch its export was checked for).

    Raises:
        ConfigError: not integers, none at all, or a size ``check`` refuses.
    """
    try:
        values = tuple(int(v) for v in (text.split(",") if isinstance(text, str) else text)
                       if str(v).strip())
    except ValueError:
        values = ()
    if not values:
        raise ConfigError(f"{option} {text!r}: give comma-separated batch sizes, e.g. 1,8")
    for value in values:
        if check is not None:
            check(value)
        elif value < 1:
            raise ConfigError(f"{option} {text!r}: batch sizes must be >= 1")
    return values
