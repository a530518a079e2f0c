"""Live sources (camera, URL, GStreamer pipeline): read on a background thread that keeps only the
newest frame, so a slow model sees the present rather than a growing queue. A dropped stream is
reopened with back-off under a reconnect policy, and each outage becomes an error record with its
duration.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import cv2

from glcf_runtime.errors import ConfigError
from glcf_runtime.frames import Frame, FrameSource

log = logging.getLogger(__name__)


def parse_reconnect(text: str) -> int | None:
    """``--reconnect``: ``forever`` → None, else a number of attempts >= 0.

    Raises:
        ConfigError: anything else.
    """
    if text.strip().lower() == "forever":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"--reconnect {text!r}: give a number of attempts (0: never) or 'forever'")
    return value


class LiveSource(FrameSource):
    """A capture read on a background thread that keeps only the newest frame.

    The first open happens here, so a wrong camera index or URL fails at once; after that,
    a dropped stream is reopened with back-off ``initial, 2·initial, …`` capped at ``maximum``.

    Args:
        name: for records and logs.
        open_capture: returns an opened ``cv2.VideoCapture`` (or anything with its
            ``isOpened``, ``read``, ``get`` and ``release``).
        backoff: ``(initial, maximum)`` delay in seconds between reconnection attempts.
        max_retries: give up (``failed`` is set, iteration ends) after this many failed
            attempts in a row; None retries forever. Each outage becomes an error record
            (``outage_s``: how long it lasted) when the stream comes back or the source gives up.
        on_event: called with each reconnection message; default: ``logging`` warning.
    """

    live = True

    def __init__(
        self,
        name: str,
        open_capture: Callable[[], Any],
        backoff: tuple[float, float] = (0.5, 30.0),
        max_retries: int | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        capture = open_capture()
        if capture is None or not capture.isOpened():
            raise ConfigError(
                f"cannot open {name}; check the index, URL or pipeline, and that "
                "nothing else holds the camera"
            )
        super().__init__(name, capture.get(cv2.CAP_PROP_FPS) or None)
        self._open, self._backoff, self._max_retries = open_capture, backoff, max_retries
        self._event = on_event or (lambda message: log.warning("%s", message))
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._events: deque[Frame] = deque()  # outage records, yielded before newer frames
        self._lost_at: float | None = None  # when the stream was lost; None while it runs
        self._attempts = 0  # reconnection attempts since it was lost
        self.reconnects = 0  # times the stream came back after it was lost (read-only)
        self._done = False
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(capture,), daemon=True, name=f"glcf-source-{name}"
        )
        self._thread.start()

    def _read_until_lost(self, capture: Any, sequence: int) -> int:
        """Publish frames until the capture fails or the source closes; return the next index."""
        while not self._closed.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                break
            if self._lost_at is not None:
                sequence = self._outage(sequence, f"reconnected after {self._attempts} attempt(s)")
                self.reconnects += 1
            with self._cond:
                self._latest = Frame(sequence, time.time(), image)
                self._cond.notify_all()
            sequence += 1
        capture.release()
        if self._lost_at is None and not self._closed.is_set():
            self._lost_at = time.time()
        return sequence

    @property
    def connected(self) -> bool:
        """False from the moment the stream is lost until it comes back (or for good)."""
        return self._lost_at is None and not self._done

    def _outage(self, sequence: int, how: str) -> int:
        """Queue the record of the outage that began at ``_lost_at``; return the next index."""
        seconds = time.time() - (self._lost_at or time.time())
        record = Frame(sequence, time.time(), None, None,
                       f"{self.name}: stream lost for {seconds:.1f} s; {how}", outage_s=seconds)
        with self._cond:
            self._events.append(record)
            self._cond.notify_all()
        self._lost_at, self._attempts = None, 0
        return sequence + 1

    def _run(self, capture: Any) -> None:
        sequence = 0
        try:
            while not self._closed.is_set():
                if capture is not None and capture.isOpened():
                    sequence = self._read_until_lost(capture, sequence)
                elif capture is not None:
                    capture.release()
                if self._closed.is_set():
                    break
                self._attempts += 1
                if self._max_retries is not None and self._attempts > self._max_retries:
                    self.failed = (
                        f"{self.name} lost; gave up after {self._max_retries} reconnection attempts"
                    )
                    self._event(self.failed)
                    self._outage(sequence, f"gave up after {self._max_retries} attempt(s)")
                    break
                attempt = self._attempts
                delay = min(self._backoff[1], self._backoff[0] * 2 ** (attempt - 1))
                self._event(f"{self.name} lost; reconnecting in {delay:g} s (attempt {attempt})")
                if self._closed.wait(delay):
                    break
                capture = self._open()
        except Exception as exc:  # a backend error must not end the thread silently
            self.failed = f"{self.name} failed: {exc}"
            self._event(self.failed)
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def iterate(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """The newest frame each time the loop asks, and each outage's record, in order."""
        last = -1
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda last=last: (
                        self._done
                        or bool(self._events)
                        or (self._latest is not None and self._latest.index > last)
                    ),
                    0.1,
                )
                event = self._events.popleft() if self._events else None
                frame = self._latest
                fresh = frame is not None and frame.index > last
                if event is None and self._done and not fresh:
                    return
            if stop is not None and stop.is_set():
                return
            if event is not None:
                last = max(last, event.index)
                yield event
            elif fresh:
                last = frame.index
                yield frame

    def close(self) -> None:
        """Stop the reader thread; it releases the capture after its current read returns."""
        self._closed.set()
        self._thread.join(timeout=2.0)
