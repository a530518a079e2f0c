"""Progress bars (rich) for long work: reading images, training, calibration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextmanager
def counting_progress(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yields ``advance(done, total)`` that moves a bar (or does nothing when disabled)."""
    if not enabled:
        yield lambda done, total: None
        return
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)


class TrainProgress:
    """A training bar showing step, epoch, lr and every loss term."""

    def __init__(self, total: int, start: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not enabled,
        )
        self.task = self.bar.add_task("train", total=total, completed=start, info="")
        self.last_epoch = -1

    def __enter__(self) -> TrainProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def update(self, step: int, epoch: int, losses: dict[str, float]) -> None:
        if not self.enabled:
            return
        info = (f"ep {epoch} lr {losses['lr']:.1e} loss {losses['total']:.4f} "
                f"ℓC {losses['l_c']:.4f} ℓE {losses['l_e']:.4f} ℓG {losses['l_g']:.4f}")
        self.bar.update(self.task, completed=step, info=info)
        if epoch != self.last_epoch and not console.is_terminal:
            console.print(f"step {step} {info}")  # a line per epoch in logs without a terminal
        self.last_epoch = epoch
