"""Shared console objects for the CLI."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterable
from typing import TextIO

from rich.console import Console
from rich.markup import escape

LOG_WIDTH = 160


def width_for(stream: TextIO) -> int | None:
    """Rich lays out output that is not a terminal (a log file, a pipe, ``tee``) 80 columns wide,
    which cuts wide tables' cells ("1522…" for 1522.9); such output gets ``LOG_WIDTH`` columns
    unless ``COLUMNS`` says otherwise. A terminal keeps its own width."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return LOG_WIDTH


console = Console(width=width_for(sys.stdout))
err_console = Console(stderr=True, width=width_for(sys.stderr))


def log_line(message: str) -> None:
    """A library's progress line (the ``log`` of export, bench, the demo), printed as written: its
    text is not read as rich markup, so ``pip install 'glcf[trt]'`` keeps its ``[trt]``."""
    console.print(message, markup=False, highlight=False)


def shell(args: Iterable[object]) -> str:
    """A command to copy and run: each argument shell-quoted (a path with a space stays one
    argument), escaped for rich (``[...]`` in a path is printed, not taken for markup)."""
    return escape(shlex.join(str(a) for a in args))
