"""`glcf demo`'s categories at the same time, each in a process of its own: a bar per category in
this process, their log lines printed as they come, the first failure stopping the rest."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue as queues
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from glcf_runtime.errors import GlcfError
from glcf_train.progress import console

if TYPE_CHECKING:
    from glcf_cli.demo import CategoryJob, DemoCategory

POLL_S = 0.5  # how often a silent wait checks that every process is still alive


def run_in_parallel(jobs: list[CategoryJob], at_once: int,
                    log: Callable[[str], None]) -> list[DemoCategory]:
    """Run ``jobs`` (at most ``at_once`` together); their results in the order given.

    Raises the first category's error (the same type where it can travel between processes);
    the other processes are stopped then.
    """
    ctx = mp.get_context("spawn")  # a fresh interpreter: no threads or locks inherited
    messages = ctx.Queue()
    waiting = list(jobs)
    running: dict[str, mp.process.BaseProcess] = {}
    results: dict[str, DemoCategory] = {}
    totals: dict[str, int] = {}  # each bar's length
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as bars:
            tasks = {job.name: bars.add_task(f"{job.name}: waiting", total=None, detail="")
                     for job in jobs}
            while waiting or running:
                while waiting and len(running) < at_once:
                    job = waiting.pop(0)
                    process = ctx.Process(target=_work, args=(job, messages),
                                          name=f"glcf-demo-{job.name}")
                    process.start()
                    running[job.name] = process
                try:
                    kind, name, *rest = messages.get(timeout=POLL_S)
                except queues.Empty:
                    _check_alive(running)
                    continue
                if kind == "log":
                    log(rest[0])
                elif kind == "stage":
                    what, done, total, detail = rest
                    totals[name] = total
                    bars.update(tasks[name], description=f"{name}: {what}", completed=done,
                                total=total, detail=detail)
                elif kind == "done":
                    results[name] = rest[0]
                    running.pop(name).join()
                    bars.update(tasks[name], description=f"{name}: done", detail="",
                                completed=totals.get(name, 1), total=totals.get(name, 1))
                elif kind == "failed":
                    raise rest[0]
                else:  # "crashed": not a user's error; its traceback, as the process saw it
                    raise GlcfError(f"{name}: the demo's process for this category failed:\n"
                                    f"{rest[0]}")
    finally:
        for process in running.values():  # a failure or Ctrl-C: the others stop too
            process.kill()
            process.join()
        messages.close()
    return [results[job.name] for job in jobs]


def _check_alive(running: dict[str, mp.process.BaseProcess]) -> None:
    """GlcfError naming a category whose process ended without a word (killed: memory?)."""
    for name, process in running.items():
        if process.exitcode not in (None, 0):
            raise GlcfError(f"{name}: its process ended with exit code {process.exitcode} before "
                            "it finished (out of memory?); run the demo with --jobs 1 to run "
                            "the categories one after another")


def _work(job: CategoryJob, messages) -> None:
    """A category's chain in its own process; every outcome goes back as a message."""
    import torch

    from glcf_cli.demo import run_category

    if job.threads is not None:
        torch.set_num_threads(job.threads)

    def follow(stage: str, done: int, total: int, detail: str) -> None:
        messages.put(("stage", job.name, stage, done, total, detail))

    try:
        result = run_category(job, lambda line: messages.put(("log", job.name, line)), follow,
                              loop=False)
    except GlcfError as exc:
        messages.put(("failed", job.name, _portable(exc)))
    except BaseException:  # a bug's traceback must reach the user
        messages.put(("crashed", job.name, traceback.format_exc()))
    else:
        messages.put(("done", job.name, result))


def _portable(exc: GlcfError) -> GlcfError:
    """``exc`` where it survives pickling (its type kept), else a GlcfError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any failure to travel
        return GlcfError(str(exc))
    return exc
