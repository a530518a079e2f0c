"""Webhooks through a real http.server: a 503 phase is retried with back-off and flushed in
order; a 400 refuses one message for good (kept in the outbox, recorded, counted) and the rest
go on; the bearer token comes from the environment; deadlines mark messages late."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from glcf_bench.fixtures.contract_model import write_images
from glcf_runtime.loop import inspect
from glcf_runtime.publish import PublishOptions, PublishSink, make_publishers
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import open_source
from tests.glcf_runtime.publish.plant import Webhook, records

TOKEN = "webhook-token-0815"


def test_503_phase_then_flush_in_order_and_a_refused_message_kept(runner, tmp_path: Path) -> None:
    folder = write_images(tmp_path / "cam", [i == 4 for i in range(8)])[0].parent
    phase = {"unavailable": 3}

    def answer(body: dict) -> int:
        if phase["unavailable"]:
            phase["unavailable"] -= 1
            return 503
        return 400 if body["frame"] == 5 else 204

    hook = Webhook(status=answer)
    jsonl = JsonlSink(tmp_path / "run.jsonl")
    uri = f"http://station@127.0.0.1:{hook.port}/verdicts?line=3"
    options = PublishOptions((uri,), deadline_ms=200.0, max_wait_s=0.5,
                             env={"GLCF_WEBHOOK_TOKEN": TOKEN})
    outbox = tmp_path / "run.jsonl.outbox.sqlite"
    sink = PublishSink(make_publishers(options), outbox, options, event=jsonl.write_record)
    try:
        with open_source(str(folder)) as source:
            summary = inspect(runner, source, sinks=[sink, jsonl])
    finally:
        hook.close()
    assert [m["frame"] for m in hook.received] == [0, 1, 2, 3, 4, 6, 7]
    assert hook.attempts == 3 + 8  # three 503s, then each message once
    assert all(h["Authorization"] == f"Bearer {TOKEN}" for h in hook.headers)
    assert [h["Idempotency-Key"] for h in hook.headers] == [m["message_id"] for m in hook.received]
    assert hook.received[4]["anomalous"] is True
    # frame 0 waited out the 503s (0.25 + 0.5 + 0.5 s): sent late, and counted late
    assert hook.received[0]["late"] is True
    flagged = sum(m["late"] for m in hook.received)
    publish = summary.publish
    assert publish["late"] >= flagged >= 1
    assert (publish["delivered"], publish["refused"], publish["pending"]) == (7, 1, 0)
    assert publish["failures"] == 3 + 1

    lines = records(tmp_path / "run.jsonl")
    refused = [r for r in lines if r.get("event") == "publish_refused"]
    masked = f"http://***@127.0.0.1:{hook.port}/verdicts?line=3"
    assert [(r["frame"], r["publisher"], r["error"]) for r in refused] == [
        (5, masked, "HTTP 400 Bad Request")]
    outage = next(r for r in lines if r.get("event") == "publish_outage")
    assert outage["failures"] == 3 and outage["error"].startswith("HTTP 503")
    text = (tmp_path / "run.jsonl").read_text()
    assert TOKEN not in text and "station@" not in text
    with sqlite3.connect(outbox) as db:  # kept, with why, never resent
        kept = db.execute("SELECT m.payload, f.detail FROM failed f JOIN messages m USING (seq)")
        assert [('"frame":5' in p, d) for p, d in kept] == [(True, "HTTP 400 Bad Request")]


def test_a_receiver_down_past_the_drain_leaves_the_rest_in_the_outbox(runner, tmp_path: Path
                                                                      ) -> None:
    folder = write_images(tmp_path / "cam", [False] * 3)[0].parent
    hook = Webhook(status=503)
    options = PublishOptions((f"http://127.0.0.1:{hook.port}/v",), drain_s=0.5, max_wait_s=0.25)
    outbox = tmp_path / "o.sqlite"
    sink = PublishSink(make_publishers(options), outbox, options)
    try:
        with open_source(str(folder)) as source:
            summary = inspect(runner, source, sinks=[sink])
        assert summary.publish["pending"] == 3 and summary.publish["delivered"] == 0
        hook.status = 200  # back: the next run delivers the three first, with their old ids
        again = PublishSink(make_publishers(options), outbox, options)
        assert again.resumed == 3
        with open_source(str(folder)) as source:
            inspect(runner, source, sinks=[again])
    finally:
        hook.close()
    ids = [m["message_id"] for m in hook.received]
    assert ids == [f"{sink.run_id}:{folder}:{i}" for i in range(3)] + [
        f"{again.run_id}:{folder}:{i}" for i in range(3)]
