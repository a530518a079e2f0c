"""What ``glcf bench`` runs: the backends, batch sizes, timing and rounds (shared by the rounds in
``bench.py`` and the back-to-back pairs in ``pairs.py``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from glcf_bench.frames import FRAME_SIZE
from glcf_bench.targets import BenchBackend
from glcf_runtime.errors import ConfigError


@dataclass(frozen=True)
class BenchSettings:
    """What to run; ``run_bench`` checks the values and fills ``threads``."""

    backends: tuple[BenchBackend, ...]
    batches: tuple[int, ...]
    warmup: int = 2  # untimed batches per backend, batch size and round
    min_time: float = 5.0  # seconds of timed batches per backend and batch size (>= MIN_RUNS)
    rounds: int = 3  # the backends take turns this many times; min_time is shared among them
    threads: int = 1  # CPU threads for torch, ONNX Runtime and the MatMul peak
    loop: bool = True
    loop_frames: int = 300
    cuda_graphs: bool = False
    pairs: int = 10  # batches alternating with torch, per backend and batch size (0: none)

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "backends": [b.value for b in self.backends],
            "frame_size": list(FRAME_SIZE),
        }


def parse_backends(text: str | list[str]) -> tuple[BenchBackend, ...]:
    names = text.split(",") if isinstance(text, str) else text
    try:
        return tuple(BenchBackend(n.strip()) for n in names if n.strip())
    except ValueError:
        choices = ", ".join(b.value for b in BenchBackend)
        raise ConfigError(f"--backends {text!r}: choose from {choices}") from None


def parse_batches(text: str | list[int]) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ConfigError(f"--batch {text!r}: give comma-separated integers, e.g. 1,8") from None
    if not values or min(values) < 1:
        raise ConfigError(f"--batch {text!r}: batch sizes must be >= 1")
    return values
