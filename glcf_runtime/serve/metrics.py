"""``/metrics``: the live state in Prometheus' text format, through ``prometheus_client``.

A collector reads ``LiveState.metrics()`` at scrape time, so the loop pays nothing for metrics
beyond the counting ``LiveState.write`` does anyway, and the scrape always agrees with
``/api/status``. Each server has its own registry (no process-wide default registry).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from glcf_runtime.serve.state import LATENCY_BUCKETS_S, UNREADABLE, LiveState

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


def _latency(buckets: list[int], total_s: float) -> HistogramMetricFamily:
    cumulative, running = [], 0
    for bound, count in zip((*LATENCY_BUCKETS_S, math.inf), buckets, strict=True):
        running += count
        cumulative.append(("+Inf" if math.isinf(bound) else repr(bound), running))
    return HistogramMetricFamily(
        "glcf_latency_seconds",
        "From a frame being available to its verdict.",
        buckets=cumulative,
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
