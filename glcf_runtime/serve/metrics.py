"""``/metrics``: the live state in Prometheus' text format, through ``prometheus_client``.

A collector reads ``LiveState.metrics()`` at scrape time, so the loop pays nothing for metrics
beyond the counting ``LiveState.write`` does anyway, and the scrape always agrees with
``/api/status``. Each server has its own registry (no process-wide default registry).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from glcf_runtime.serve.cameras import LATENCY_BUCKETS_S, UNREADABLE
from glcf_runtime.serve.state import LiveState

if TYPE_CHECKING:
    from glcf_runtime.publish import PublishSink

CONTENT_TYPE = CONTENT_TYPE_LATEST


class LiveCollector:
    """Metric families of one ``LiveState`` (names start with ``glcf_``).

    With one camera the series carry no camera label; with several, every per-frame series
    carries ``camera`` (one series per camera, no unlabelled total: sum them in PromQL).
    """

    def __init__(self, state: LiveState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        values = self.state.metrics()
        cameras = values["cameras"]
        labels = ["camera"] if len(cameras) > 1 else []
        rows = [([name], found) for name, found in cameras.items()] if labels else [([], values)]
        frames = CounterMetricFamily("glcf_frames", "Frames scored.", labels=labels)
        anomalies = CounterMetricFamily(
            "glcf_anomalies", "Frames scored at or above the threshold.", labels=labels)
        errors = CounterMetricFamily(
            "glcf_errors",
            "Frames not scored: unreadable, or unusable by the frame-health check (kind).",
            labels=[*labels, "kind"],
        )
        latency = HistogramMetricFamily(
            "glcf_latency_seconds", "From a frame being available to its verdict.", labels=labels)
        fps = GaugeMetricFamily(
            "glcf_fps", "Frames scored per second, recent seconds.", labels=labels)
        score = GaugeMetricFamily(
            "glcf_last_score", "Image score of the last frame scored (NaN before the first).",
            labels=labels)
        up = GaugeMetricFamily(
            "glcf_source_up", "1 while the frame source delivers, 0 when lost or failed.",
            labels=labels)
        reconnects = CounterMetricFamily(
            "glcf_source_reconnects", "Times a live source was reopened after it was lost.",
            labels=labels)
        for label, found in rows:
            frames.add_metric(label, found["frames"])
            anomalies.add_metric(label, found["anomalies"])
            for kind, count in sorted({UNREADABLE: 0, **found["errors"]}.items()):
                errors.add_metric([*label, kind], count)
            latency.add_metric(label, _buckets(LATENCY_BUCKETS_S, found["buckets"]),
                               found["latency_sum_s"])
            fps.add_metric(label, found["fps"])
            score.add_metric(label, _number(found["last_score"]))
            up.add_metric(label, 1.0 if found["source"]["up"] else 0.0)
            reconnects.add_metric(label, found["source"]["reconnects"])
        yield from (frames, anomalies, errors, latency, fps, score)
        yield GaugeMetricFamily(
            "glcf_threshold", "Anomalous if score >= this (NaN when not calibrated).",
            value=_number(values["threshold"]),
        )
        yield from (up, reconnects)
        card = self.state.card
        yield InfoMetricFamily(
            "glcf_model",
            "The model being run.",
            value={
                key: str(card.get(key))
                for key in ("category", "model", "backend", "precision", "threshold_origin")
            },
        )


class PublishCollector:
    """Metric families of ``glcf inspect --publish`` (one ``publisher`` label per destination)."""

    def __init__(self, publishing: PublishSink) -> None:
        self.publishing = publishing

    def collect(self) -> Iterator[Metric]:
        from glcf_runtime.publish.delivery import CAPTURE_TO_ACK_BUCKETS_S

        values = self.publishing.metrics()
        yield GaugeMetricFamily(
            "glcf_outbox_pending", "Messages in the outbox not yet acknowledged by every publisher.",
            value=values["pending"],
        )
        families = {
            "failures": CounterMetricFamily(
                "glcf_publish_failures", "Delivery attempts that failed (refusals included).",
                labels=["publisher"]),
            "refused": CounterMetricFamily(
                "glcf_publish_refused", "Messages a publisher refused for good (kept in the "
                "outbox's failed table).", labels=["publisher"]),
            "late": CounterMetricFamily(
                "glcf_publish_late", "Messages acknowledged later than --deadline-ms after "
                "capture.", labels=["publisher"]),
            "outages": CounterMetricFamily(
                "glcf_publish_outages", "Times a publisher stopped acknowledging.",
                labels=["publisher"]),
            "up": GaugeMetricFamily(
                "glcf_publish_up", "1 while the last attempt was acknowledged, else 0.",
                labels=["publisher"]),
        }
        ack = HistogramMetricFamily(
            "glcf_capture_to_ack_seconds", "From a frame being captured to its verdict's "
            "acknowledgement by the publisher.", labels=["publisher"])
        for name, found in sorted(values["publishers"].items()):
            for key, family in families.items():
                family.add_metric([name], float(found[key]))
            ack.add_metric([name], _buckets(CAPTURE_TO_ACK_BUCKETS_S, found["buckets"]),
                           found["ack_sum_s"])
        yield from families.values()
        yield ack


def _buckets(bounds: Sequence[float], counts: list[int]) -> list[tuple[str, int]]:
    """Per-bucket counts (the last above every bound) → Prometheus' cumulative buckets."""
    cumulative, running = [], 0
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        running += count
        cumulative.append(("+Inf" if math.isinf(bound) else repr(bound), running))
    return cumulative


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def registry(state: LiveState) -> CollectorRegistry:
    """A registry holding only ``state``'s metrics."""
    found = CollectorRegistry(auto_describe=False)
    found.register(LiveCollector(state))
    return found


def render(found: CollectorRegistry) -> bytes:
    """The text exposition format (``CONTENT_TYPE``)."""
    return generate_latest(found)
