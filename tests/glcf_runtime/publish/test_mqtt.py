"""MQTT through a real Mosquitto broker: killed and restarted on the same port mid-run, every
verdict still arrives once (after de-duplication by message_id), in order; the outage is a
JSONL record and a counter; the last verdict is retained per camera; credentials are masked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from glcf_runtime.loop import ExitCode, inspect
from glcf_runtime.publish import PublishOptions, PublishSink, make_publishers
from glcf_runtime.serve.metrics import PublishCollector
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import open_source
from tests.glcf_runtime.publish.plant import (
    Mosquitto,
    Subscriber,
    dedup,
    needs_mosquitto,
    records,
    slow_folder,
)

PASSWORD = "broker-secret-4711"


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


@needs_mosquitto
def test_broker_killed_mid_run_every_verdict_arrives_in_order(runner, tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, "line/#")
    frames = slow_folder(tmp_path / "frames", 160)
    jsonl = JsonlSink(tmp_path / "run.jsonl")
    uri = f"mqtt://station@127.0.0.1:{broker.port}/line/verdicts"
    options = PublishOptions((uri,), mqtt_retain_last=True, max_wait_s=0.5, drain_s=30,
                             env={"GLCF_MQTT_PASSWORD": PASSWORD})
    sink = PublishSink(make_publishers(options), tmp_path / "run.jsonl.outbox.sqlite", options,
                       event=jsonl.write_record)
    outage: dict[str, float] = {}

    def kill_and_restart() -> None:
        subscriber.wait_for(10, topic="line/verdicts")
        broker.stop()
        outage["scored_at_kill"] = len(records(tmp_path / "run.jsonl"))
        time.sleep(1.0)
        broker.start()

    chaos = threading.Thread(target=kill_and_restart)
    try:
        chaos.start()
        with open_source(str(frames)) as source:
            summary = inspect(runner, source, sinks=[sink, jsonl])
        chaos.join()
        got = subscriber.wait_for(160, topic="line/verdicts", timeout=20)
    finally:
        chaos.join()
        subscriber.close()
        broker.stop()
    assert summary.exit_code == ExitCode.SCORED and summary.frames == 160
    assert 10 <= outage["scored_at_kill"] < 160, "the broker went down while frames were scored"
    unique = dedup(got)
    assert [m["frame"] for m in unique] == list(range(160))
    assert len({m["message_id"] for m in got}) == 160
    run_id = sink.run_id
    assert [m["message_id"] for m in unique] == [f"{run_id}:{frames}:{i}" for i in range(160)]
    first = unique[0]
    assert first["camera"] == str(frames) and first["capture_time"] <= first["publish_time"]
    assert {"score", "anomalous", "latency_ms", "timestamp"} <= set(first)

    lines = records(tmp_path / "run.jsonl")
    masked = f"mqtt://***@127.0.0.1:{broker.port}/line/verdicts"
    outages = [r for r in lines if r.get("event") == "publish_outage"]
    assert outages and all(r["publisher"] == masked for r in outages)
    assert outages[0]["until"] > outages[0]["since"] and outages[0]["failures"] >= 1
    text = (tmp_path / "run.jsonl").read_text()
    assert PASSWORD not in text and "station@" not in text

    publish = summary.publish
    assert publish["pending"] == 0 and publish["delivered"] == 160
    assert publish["failures"] >= 1 and publish["outages"] >= 1
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PublishCollector(sink))
    scraped = generate_latest(registry).decode()
    assert _metric(scraped, "glcf_publish_failures_total") == publish["failures"]
    assert _metric(scraped, "glcf_publish_outages_total") >= 1
    assert _metric(scraped, "glcf_outbox_pending") == 0
    assert _metric(scraped, "glcf_capture_to_ack_seconds_count") == 160
    assert f'publisher="{masked}"' in scraped


@needs_mosquitto
def test_last_verdict_is_retained_per_camera(runner, tmp_path: Path) -> None:
    from glcf_bench.fixtures.contract_model import write_images

    broker = Mosquitto(tmp_path / "broker").start()
    folder = write_images(tmp_path / "cam", [False, True, False, True])[0].parent
    options = PublishOptions((f"mqtt://127.0.0.1:{broker.port}/line/v",), mqtt_retain_last=True)
    sink = PublishSink(make_publishers(options), tmp_path / "o.sqlite", options)
    try:
        with open_source(str(folder)) as source:
            summary = inspect(runner, source, sinks=[sink])
        assert summary.publish["delivered"] == 4 and summary.publish["pending"] == 0
        late_joiner = Subscriber(broker.port, "line/v/+/last", client_id="late-joiner")
        retained = late_joiner.wait_for(1, timeout=10)
        late_joiner.close()
    finally:
        broker.stop()
    camera = str(folder).replace("/", "_")
    assert [m["frame"] for m in retained] == [3] and retained[0]["anomalous"] is True
    assert late_joiner.messages[0][0] == f"line/v/{camera}/last" and late_joiner.messages[0][2]
