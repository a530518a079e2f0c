"""``PublishSink``: the loop's side of publishing. ``write`` commits the frame's message to the
outbox (nothing is sent from the loop) and wakes the delivery threads; ``close`` waits up to
``drain_s`` for them, then leaves what is undelivered in the outbox for the next run."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from glcf_runtime.errors import ConfigError
from glcf_runtime.outbox import Outbox, OutboxFull, new_run_id
from glcf_runtime.publish.base import Publisher, PublishOptions, mask, split
from glcf_runtime.publish.delivery import Delivery
from glcf_runtime.publish.mqtt import MqttPublisher
from glcf_runtime.publish.opcua import OpcUaPublisher
from glcf_runtime.publish.tls import check_tls
from glcf_runtime.publish.webhook import WebhookPublisher
from glcf_runtime.sinks import OutputError, Result, Sink

log = logging.getLogger("glcf.publish")
PUBLISHERS: dict[str, type[Publisher]] = {
    "mqtt": MqttPublisher, "mqtts": MqttPublisher, "http": WebhookPublisher,
    "https": WebhookPublisher, "opc.tcp": OpcUaPublisher,
}
DRAIN_POLL_S = 0.05


def make_publishers(options: PublishOptions) -> list[Publisher]:
    """One publisher per ``--publish`` URI; ConfigError for a bad URI or option (every URI is
    checked, passwords included, before any library loads)."""
    schemes = [split(uri).scheme.lower() for uri in options.uris]
    names = [mask(uri) for uri in options.uris]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"--publish {name} is given twice; give each destination once")
    if options.opcua_nodes and "opc.tcp" not in schemes:
        raise ConfigError("--opcua-node names nodes of an OPC UA server: add --publish "
                          "opc.tcp://HOST:4840")
    if options.mqtt_retain_last and not {"mqtt", "mqtts"} & set(schemes):
        raise ConfigError("--mqtt-retain-last is for MQTT: add --publish mqtt://HOST:1883/TOPIC")
    if options.deadline_ms is not None and not options.deadline_ms > 0:
        raise ConfigError(f"--deadline-ms {options.deadline_ms}: give milliseconds > 0, e.g. 200")
    if not options.drain_s >= 0:
        raise ConfigError(f"--drain-s {options.drain_s}: give seconds >= 0, e.g. 10")
    check_tls(options, schemes)
    return [PUBLISHERS[scheme](uri, options) for scheme, uri in zip(schemes, options.uris, strict=True)]


class PublishSink(Sink):
    """Every result becomes a message in the outbox, delivered by one thread per publisher.

    Args:
        publishers: from ``make_publishers``.
        outbox: the SQLite file (see ``glcf_runtime.outbox``); undelivered messages of an
            earlier run in it go first.
        options: deadline, drain and back-off.
        max_bytes: the outbox's bound (``--outbox-max-mb``).
        event: receives each event record (outages, refusals, outbox full), e.g. the JSONL
            sink's ``write_record``; from any thread. Every event is logged as well.
    """

    def __init__(self, publishers: list[Publisher], outbox: Path, options: PublishOptions,
                 max_bytes: int = 256 << 20, event: Callable[[dict], None] | None = None) -> None:
        self.path, self.options, self._event = outbox, options, event
        self.box = Outbox(outbox, max_bytes)
        self.run_id = new_run_id()
        self.box.start_run(self.run_id)
        self.names = [p.name for p in publishers]
        self.lock = threading.Lock()  # the loop writes, /metrics reads
        self.resumed = self.box.count_pending(self.names)
        self.waiting = self.box.waiting_for(self.names)
        if self.resumed:
            log.warning("the outbox %s holds %d undelivered message(s) of an earlier run; they "
                        "are delivered first", outbox, self.resumed)
        for name, count in self.waiting.items():
            log.warning("the outbox %s holds %d message(s) for %s, which this run does not "
                        "publish to; they stay there", outbox, count, name)
        self.full = False
        self._closed = False
        self.left: int | None = None  # pending at exit, once closed
        self.deliveries = [Delivery(p, outbox, self.event, options.deadline_ms, options.max_wait_s)
                           for p in publishers]
        for delivery in self.deliveries:
            delivery.start()

    def event(self, record: dict) -> None:
        """Log ``record`` and hand it to ``event`` (an output that fails is logged, not raised:
        this runs on delivery threads too)."""
        log.warning("%s", json.dumps(record))
        if self._event is not None:
            try:
                self._event(record)
            except (OutputError, OSError) as exc:
                log.error("cannot record %s: %s", record.get("event"), exc)

    def write(self, result: Result) -> None:
        record = result.record()
        camera = record.get("camera", result.source)
        body = {**record, "message_id": f"{self.run_id}:{camera}:{record['frame']}",
                "camera": camera, "capture_time": round(result.frame.timestamp, 6)}
        try:
            with self.lock:
                self.box.enqueue(body, self.names)
        except OutboxFull as exc:
            self.full = True
            with self.lock:
                pending = self.box.count_pending()
            log.error("ALARM: %s", exc)
            self.event({"event": "outbox_full", "alarm": True, "outbox": str(self.path),
                        "pending": pending, "max_mb": self.box.max_bytes / 1e6,
                        "frame": record["frame"], "camera": camera, "time": round(time.time(), 3)})
            raise
        for delivery in self.deliveries:
            delivery.wake.set()

    def pending(self) -> int:
        """Messages this run's publishers have not acknowledged (at exit: what was left)."""
        with self.lock:
            return self.box.count_pending(self.names) if self.left is None else self.left

    def close(self) -> None:
        """Wait up to ``drain_s`` for the deliveries, stop them; idempotent."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self.options.drain_s
        while self.pending() and time.monotonic() < deadline and any(
                d.is_alive() for d in self.deliveries):
            time.sleep(DRAIN_POLL_S)
        for delivery in self.deliveries:
            with self.lock:
                left = self.box.count_pending([delivery.publisher.name])
            delivery.stop(left)
        with self.lock:
            self.left = self.box.count_pending(self.names)
            self.box.close()
        if self.left:
            log.warning("%d message(s) not delivered yet stay in the outbox %s; the next run with "
                        "the same outbox delivers them first", self.left, self.path)

    def report(self) -> dict:
        """What the run summary says about publishing (after ``close``)."""
        totals = {k: 0 for k in ("delivered", "failures", "refused", "late", "outages")}
        for delivery in self.deliveries:
            values = delivery.metrics()
            for key in totals:
                totals[key] += values[key]
        return {"outbox": str(self.path), "run_id": self.run_id, "publishers": self.names,
                "resumed": self.resumed, "pending": self.left,
                "outbox_full": self.full, **totals,
                "waiting_for_other_publishers": self.waiting}

    def metrics(self) -> dict:
        """For ``/metrics``: pending messages and each publisher's counters."""
        return {"pending": self.pending(),
                "publishers": {d.publisher.name: d.metrics() for d in self.deliveries}}
