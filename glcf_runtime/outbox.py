"""The durable outbox of ``glcf inspect --publish``: every verdict is committed here before any
publisher sends it, and removed only when every publisher it was meant for acknowledged it.

SQLite in WAL mode, ``synchronous=FULL`` (a committed message survives a killed process and a
power cut). One row per message in ``messages`` (``seq`` orders them: older runs first) and one
row per (publisher, message) still to deliver in ``pending``; a message a publisher refused for
good (a webhook's 4xx) moves to ``failed`` and stays, so nothing is dropped without a trace.
Each thread opens its own ``Outbox`` on the same file.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glcf_runtime.errors import ConfigError
from glcf_runtime.sinks import OutputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    camera TEXT NOT NULL,
    capture_time REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    publisher TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (publisher, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS failed (
    publisher TEXT NOT NULL, seq INTEGER NOT NULL, detail TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (publisher, seq)
) WITHOUT ROWID;
"""
BUSY_TIMEOUT_MS = 10_000  # a writer waits this long for another thread's transaction


class OutboxFull(OutputError):
    """The outbox reached ``--outbox-max-mb``: the run stops (exit code 5), nothing is dropped."""


@dataclass(frozen=True)
class Message:
    """One stored message: ``seq`` orders it, ``body`` is the JSON payload without send times."""

    seq: int
    message_id: str
    camera: str
    capture_time: float
    body: dict


def outbox_path(jsonl: Path | None, outbox: Path | None) -> Path:
    """``--outbox``, else ``<jsonl>.outbox.sqlite``; ConfigError when there is neither."""
    if outbox is not None:
        return outbox
    if jsonl is None:
        raise ConfigError("--publish needs a durable outbox: add --jsonl FILE (the outbox is then "
                          "FILE.outbox.sqlite) or --outbox PATH, e.g. --outbox station.outbox.sqlite")
    return jsonl.with_name(jsonl.name + ".outbox.sqlite")


def new_run_id() -> str:
    """A short id, unique per run: ``20261206T010644-3f9a1c``."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


class Outbox:
    """One connection to the outbox file (use one per thread).

    Args:
        path: the SQLite file (created with its folder when missing).
        max_bytes: ``enqueue`` raises OutboxFull when the stored data would exceed this.
    """

    def __init__(self, path: Path, max_bytes: int = 256 << 20) -> None:
        self.path, self.max_bytes = path, max_bytes
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"--outbox {path}: cannot open it as an SQLite outbox ({exc}); "
                              "give a writable file on a local disk") from None
        if mode.lower() != "wal":
            raise ConfigError(f"--outbox {path}: this file system does not allow SQLite's WAL "
                              "mode; put the outbox on a local disk")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_run(self, run_id: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO runs VALUES (?, ?)", (run_id, time.time()))

    def used_bytes(self) -> int:
        """Bytes the stored rows take (pages in use, the write-ahead log not counted)."""
        pages, free, size = (self.db.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size

    def enqueue(self, body: dict, publishers: Sequence[str]) -> int:
        """Commit ``body`` (with ``message_id``, ``camera``, ``capture_time``) for ``publishers``;
        its ``seq``. Raises OutboxFull (nothing stored) when the outbox is full."""
        payload = json.dumps(body, allow_nan=False, separators=(",", ":"))
        if self.used_bytes() + 2 * len(payload) > self.max_bytes:
            raise OutboxFull(
                f"the outbox {self.path} is full ({self.used_bytes() / 1e6:.2f} MB, "
                f"--outbox-max-mb {self.max_bytes / 1e6:g}) with {self.count_pending()} "
                "undelivered message(s): a publisher has not acknowledged for too long; the run "
                "stopped so that no verdict is lost. Bring the publisher back (the next run "
                "delivers them first) or raise --outbox-max-mb")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            seq = self.db.execute(
                "INSERT INTO messages (message_id, camera, capture_time, payload) VALUES (?,?,?,?)",
                (body["message_id"], body["camera"], body["capture_time"], payload)).lastrowid
            self.db.executemany("INSERT INTO pending VALUES (?, ?)", [(p, seq) for p in publishers])
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise OutputError(f"cannot write the outbox {self.path} ({exc}); the messages before "
                              "this frame are stored; free space or choose another --outbox") from None
        return seq

    def next_pending(self, publisher: str) -> Message | None:
        """The oldest message ``publisher`` has not acknowledged (nor refused for good)."""
        row = self.db.execute(
            "SELECT m.seq, m.message_id, m.camera, m.capture_time, m.payload FROM pending p "
            "JOIN messages m ON m.seq = p.seq WHERE p.publisher = ? ORDER BY p.seq LIMIT 1",
            (publisher,)).fetchone()
        if row is None:
            return None
        return Message(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def acknowledge(self, publisher: str, seq: int) -> None:
        """``publisher`` has it; the message goes once no publisher still owes or refused it."""
        self._settle(publisher, seq, None)

    def refuse(self, publisher: str, seq: int, detail: str) -> None:
        """``publisher`` refused it for good: kept in ``failed`` (with why), never resent."""
        self._settle(publisher, seq, detail)

    def _settle(self, publisher: str, seq: int, detail: str | None) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM pending WHERE publisher = ? AND seq = ?", (publisher, seq))
            if detail is not None:
                self.db.execute("INSERT OR REPLACE INTO failed VALUES (?, ?, ?, ?)",
                                (publisher, seq, detail, time.time()))
            self.db.execute(
                "DELETE FROM messages WHERE seq = ? AND NOT EXISTS (SELECT 1 FROM pending WHERE "
                "seq = ?) AND NOT EXISTS (SELECT 1 FROM failed WHERE seq = ?)", (seq, seq, seq))
            self.db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            raise

    def count_pending(self, publishers: Sequence[str] | None = None) -> int:
        """Messages still to deliver to any of ``publishers`` (None: to anyone)."""
        if publishers is None:
            return self.db.execute("SELECT COUNT(DISTINCT seq) FROM pending").fetchone()[0]
        marks = ",".join("?" * len(publishers))
        return self.db.execute(f"SELECT COUNT(DISTINCT seq) FROM pending WHERE publisher IN "
                               f"({marks})", tuple(publishers)).fetchone()[0]

    def count_failed(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM failed").fetchone()[0]

    def waiting_for(self, publishers: Sequence[str]) -> dict[str, int]:
        """Pending messages of publishers not in ``publishers`` (an earlier run's), by name."""
        rows = self.db.execute("SELECT publisher, COUNT(*) FROM pending GROUP BY publisher")
        return {name: n for name, n in rows if name not in publishers}

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
