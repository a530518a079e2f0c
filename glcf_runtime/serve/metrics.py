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

from glcf_runtime.serve.state import LATENCY_BUCKETS_S, UNREADABLE, LiveState

if TYPE_CHECKING:
    from glcf_runtime.publish import PublishSink

CONTENT_TYPE = CONTENT_TYPE_LATEST


class LiveCollector:
    """Metric families of one ``LiveState`` (names start with ``glcf_``)."""

    def __init__(self, state: LiveState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        values = self.state.metrics()
        yield CounterMetricFamily("glcf_frames", "Frames scored.", value=values["frames"])
        yield CounterMetricFamily(
            "glcf_anomalies", "Frames scored at or above the threshold.", value=values["anomalies"]
        )
        errors = CounterMetricFamily(
            "glcf_errors",
            "Frames not scored: unreadable, or unusable by the frame-health check (kind).",
            labels=["kind"],
        )
        for kind, count in sorted({UNREADABLE: 0, **values["errors"]}.items()):
            errors.add_metric([kind], count)
        yield errors
        yield _latency(values["buckets"], values["latency_sum_s"])
        yield GaugeMetricFamily(
            "glcf_fps", "Frames scored per second, recent seconds.", value=values["fps"]
        )
        yield GaugeMetricFamily(
            "glcf_last_score", "Image score of the last frame scored (NaN before the first).",
            value=_number(values["last_score"]),
        )
        yield GaugeMetricFamily(
            "glcf_threshold", "Anomalous if score >= this (NaN when not calibrated).",
            value=_number(values["threshold"]),
        )
        source = values["source"]
        yield GaugeMetricFamily(
            "glcf_source_up", "1 while the frame source delivers, 0 when lost or failed.",
            value=1.0 if source["up"] else 0.0,
        )
        yield CounterMetricFamily(
            "glcf_source_reconnects", "Times a live source was reopened after it was lost.",
            value=source["reconnects"],
        )
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


def _latency(buckets: list[int], total_s: float) -> HistogramMetricFamily:
    return HistogramMetricFamily(
        "glcf_latency_seconds",
        "From a frame being available to its verdict.",
        buckets=_buckets(LATENCY_BUCKETS_S, buckets),
        sum_value=total_s,
    )


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
