"""One delivery thread per publisher: the oldest message that publisher has not acknowledged,
sent and waited for, one at a time (so messages arrive in order per camera), retried with
capped exponential back-off until acknowledged. Scoring never waits for it.

An outage (from the first failed attempt to the next acknowledgement) is logged when it starts
and becomes a ``publish_outage`` record when it ends, or when the run ends during it.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from glcf_runtime.outbox import Outbox
from glcf_runtime.publish.base import SEND_TIMEOUT_S, Publisher, SendFailed

log = logging.getLogger("glcf.publish")
FIRST_WAIT_S = 0.25  # the wait after a failed attempt; doubles up to the publisher's maximum
IDLE_POLL_S = 0.5  # an idle thread looks at the outbox at least this often
CAPTURE_TO_ACK_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                            300.0)


class Delivery(threading.Thread):
    """Delivers ``outbox``'s messages to ``publisher`` until ``stop()``.

    Args:
        publisher: where to send.
        outbox: the outbox file (this thread opens its own connection).
        event: receives each record this thread makes (outages, refusals).
        deadline_ms: acknowledged later than this after capture: late.
        max_wait_s: the longest wait between attempts.
    """

    def __init__(self, publisher: Publisher, outbox: Path, event: Callable[[dict], None],
                 deadline_ms: float | None = None, max_wait_s: float = 10.0) -> None:
        super().__init__(daemon=True, name=f"glcf-publish-{publisher.name}")
        self.publisher, self.outbox, self.event = publisher, outbox, event
        self.deadline_ms, self.max_wait_s = deadline_ms, max(max_wait_s, FIRST_WAIT_S)
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.lock = threading.Lock()  # guards the counters below (read by /metrics)
        self.delivered = self.failures = self.refused = self.late = self.outages = 0
        self.buckets = [0] * (len(CAPTURE_TO_ACK_BUCKETS_S) + 1)  # last: above every bound
        self.ack_sum_s = 0.0
        self.outage: dict | None = None  # the outage going on: since, error, failures
        self.crashed: str | None = None

    def run(self) -> None:
        try:
            with Outbox(self.outbox) as box:
                self._deliver(box)
        except Exception as exc:  # an outbox that cannot be read any more: say so, loudly
            self.crashed = f"{type(exc).__name__}: {exc}"
            log.error("publishing to %s stopped: %s", self.publisher.name, self.crashed)
            self.event({"event": "publish_stopped", "publisher": self.publisher.name,
                        "error": self.crashed, "time": round(time.time(), 3)})
        finally:
            self.publisher.close()

    def _deliver(self, box: Outbox) -> None:
        wait = FIRST_WAIT_S
        while not self.stopping.is_set():
            message = box.next_pending(self.publisher.name)
            if message is None:
                self.wake.wait(IDLE_POLL_S)
                self.wake.clear()
                continue
            sent = time.time()
            body = {**message.body, "publish_time": round(sent, 6)}
            if self.deadline_ms is not None:
                body["late"] = (sent - message.capture_time) * 1000.0 > self.deadline_ms
            try:
                self._send(body)
            except SendFailed as exc:
                with self.lock:
                    self.failures += 1
                if exc.permanent:
                    self._refused(box, message.seq, body, str(exc))
                    continue
                self._failed(str(exc))
                self.stopping.wait(wait)
                wait = min(wait * 2, self.max_wait_s)
                continue
            acked = time.time()
            box.acknowledge(self.publisher.name, message.seq)
            self._acknowledged(acked - message.capture_time)
            wait = FIRST_WAIT_S

    def _send(self, body: dict) -> None:
        """``publisher.send``; anything it raises but SendFailed is a failed attempt as well
        (retried, recorded), never the end of the deliveries."""
        try:
            self.publisher.send(body)
        except SendFailed:
            raise
        except Exception as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}") from exc

    def _acknowledged(self, seconds: float) -> None:
        with self.lock:
            self.delivered += 1
            self.late += self.deadline_ms is not None and seconds * 1000.0 > self.deadline_ms
            self.buckets[bisect.bisect_left(CAPTURE_TO_ACK_BUCKETS_S, seconds)] += 1
            self.ack_sum_s += seconds
            outage, self.outage = self.outage, None
        if outage is not None:
            self.event(self._outage_record(outage, time.time()))
            log.warning("publishing to %s is back after %.1f s (%d failed attempts)",
                        self.publisher.name, time.time() - outage["since"], outage["failures"])

    def _failed(self, error: str) -> None:
        with self.lock:
            if self.outage is None:
                self.outage = {"since": time.time(), "error": error, "failures": 0}
                self.outages += 1
                started = True
            else:
                started = False
            self.outage["failures"] += 1
            self.outage["last_error"] = error
        if started:
            log.warning("publishing to %s failed (%s); verdicts queue in the outbox and are "
                        "retried", self.publisher.name, error)

    def _refused(self, box: Outbox, seq: int, body: dict, error: str) -> None:
        box.refuse(self.publisher.name, seq, error)
        with self.lock:
            self.refused += 1
        log.error("%s refused message %s for good (%s); it stays in the outbox's failed table",
                  self.publisher.name, body["message_id"], error)
        self.event({"event": "publish_refused", "publisher": self.publisher.name,
                    "message_id": body["message_id"], "camera": body["camera"],
                    "frame": body.get("frame"), "error": error, "time": round(time.time(), 3)})

    def _outage_record(self, outage: dict, until: float | None, pending: int | None = None) -> dict:
        record = {"event": "publish_outage", "publisher": self.publisher.name,
                  "since": round(outage["since"], 3),
                  "until": None if until is None else round(until, 3),
                  "seconds": round((until or time.time()) - outage["since"], 3),
                  "failures": outage["failures"], "error": outage.get("last_error", outage["error"])}
        if pending is not None:
            record["pending"] = pending
        return record

    def stop(self, pending: int) -> None:
        """Stop after the attempt under way; an outage still going on becomes a record."""
        self.stopping.set()
        self.wake.set()
        self.join(SEND_TIMEOUT_S + 1.0)
        with self.lock:
            outage, self.outage = self.outage, None
        if outage is not None:
            self.event(self._outage_record(outage, None, pending))

    def metrics(self) -> dict:
        with self.lock:
            return {"delivered": self.delivered, "failures": self.failures,
                    "refused": self.refused, "late": self.late, "outages": self.outages,
                    "up": self.outage is None and self.crashed is None,
                    "buckets": list(self.buckets), "ack_sum_s": self.ack_sum_s}
