"""TLS outputs against real servers with certificates of a plant's own CA (made at test time):
Mosquitto with a TLS listener and an HTTPS webhook receiver. With ``--publish-ca`` every verdict
arrives; without it (or with another CA, or a certificate for another host) the handshake
fails, the outage record names the certificate problem and the fix, and the verdicts stay in
the outbox for the next run. Mutual TLS presents the station's certificate."""

from __future__ import annotations

from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images
from glcf_runtime.loop import inspect
from glcf_runtime.publish import PublishOptions, PublishSink, make_publishers
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import open_source
from tests.glcf_runtime.publish.pki import Pki, make_pki
from tests.glcf_runtime.publish.plant import (
    Mosquitto,
    Subscriber,
    Webhook,
    dedup,
    needs_mosquitto,
    records,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _run(runner, folder: Path, options: PublishOptions, outbox: Path, jsonl: Path | None = None
         ) -> tuple[PublishSink, dict]:
    """One run of ``folder`` publishing with ``options``; the sink and the summary's publish."""
    out = None if jsonl is None else JsonlSink(jsonl)
    sink = PublishSink(make_publishers(options), outbox, options,
                       event=None if out is None else out.write_record)
    with open_source(str(folder)) as source:
        summary = inspect(runner, source, sinks=[sink] + ([] if out is None else [out]))
    return sink, summary.publish


def _outage(jsonl: Path) -> dict:
    return next(r for r in records(jsonl) if r.get("event") == "publish_outage")


@needs_mosquitto
def test_mqtts_without_the_plant_ca_keeps_the_verdicts_then_delivers_them_with_it(
        runner, pki: Pki, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", tls=pki).start()
    subscriber = Subscriber(broker.port, "line/#", tls=pki)
    folder = write_images(tmp_path / "cam", [False, True, False, False])[0].parent
    uri = f"mqtts://127.0.0.1:{broker.port}/line/verdicts"
    outbox, jsonl = tmp_path / "o.sqlite", tmp_path / "run.jsonl"
    try:
        # the system's CA certificates do not know the plant's CA: the handshake fails
        refused, publish = _run(runner, folder, PublishOptions((uri,), drain_s=1, max_wait_s=0.25),
                                outbox, jsonl)
        assert (publish["delivered"], publish["pending"]) == (0, 4) and publish["failures"] >= 1
        trusted = PublishOptions((uri,), drain_s=30, max_wait_s=0.25, ca_file=pki.ca)
        again, publish = _run(runner, folder, trusted, outbox)
        got = subscriber.wait_for(8, topic="line/verdicts", timeout=20)
    finally:
        subscriber.close()
        broker.stop()
    outage = _outage(jsonl)
    assert outage["until"] is None and outage["pending"] == 4
    assert outage["publisher"] == uri
    assert "certificate verify failed: self-signed certificate in certificate chain" in \
        outage["error"]
    assert "give the broker's CA with --publish-ca FILE" in outage["error"]
    assert "Traceback" not in jsonl.read_text()
    assert again.resumed == 4
    assert (publish["delivered"], publish["pending"], publish["failures"]) == (8, 0, 0)
    ids = [m["message_id"] for m in dedup(got)]
    assert ids == [f"{refused.run_id}:{folder}:{i}" for i in range(4)] + [
        f"{again.run_id}:{folder}:{i}" for i in range(4)]


@needs_mosquitto
def test_mqtts_mutual_tls_presents_the_station_certificate(runner, pki: Pki, tmp_path: Path
                                                           ) -> None:
    broker = Mosquitto(tmp_path / "broker", tls=pki, require_client_cert=True).start()
    subscriber = Subscriber(broker.port, "line/#", tls=pki)
    folder = write_images(tmp_path / "cam", [False, True])[0].parent
    options = PublishOptions((f"mqtts://localhost:{broker.port}/line/v",), ca_file=pki.ca,
                             client_cert=pki.client_cert, client_key=pki.client_key)
    try:
        _sink, publish = _run(runner, folder, options, tmp_path / "o.sqlite")
        got = subscriber.wait_for(2, topic="line/v", timeout=10)
    finally:
        subscriber.close()
        broker.stop()
    assert (publish["delivered"], publish["pending"]) == (2, 0)
    assert [m["frame"] for m in dedup(got)] == [0, 1]


def test_https_webhook_trusts_the_plant_ca(runner, pki: Pki, tmp_path: Path) -> None:
    hook = Webhook(tls=pki)
    folder = write_images(tmp_path / "cam", [False, True, False])[0].parent
    options = PublishOptions((f"https://127.0.0.1:{hook.port}/mes/verdicts",), ca_file=pki.ca,
                             env={"GLCF_WEBHOOK_TOKEN": "tok"})
    try:
        _sink, publish = _run(runner, folder, options, tmp_path / "o.sqlite")
    finally:
        hook.close()
    assert (publish["delivered"], publish["pending"], publish["failures"]) == (3, 0, 0)
    assert [m["frame"] for m in hook.received] == [0, 1, 2]
    assert hook.received[1]["anomalous"] is True
    assert all(h["Authorization"] == "Bearer tok" for h in hook.headers)


@pytest.mark.parametrize(("server", "ca", "problem", "fix"), [
    ("plant", "other", "certificate verify failed: unable to get local issuer certificate",
     "is not the CA that signed the server's certificate"),
    ("elsewhere", "elsewhere", "certificate verify failed: IP address mismatch",
     "connect to the server by a name or address its certificate holds"),
])
def test_https_handshake_failure_names_the_certificate_problem(
        runner, pki: Pki, tmp_path: Path, server: str, ca: str, problem: str, fix: str) -> None:
    made = {"plant": pki, "other": make_pki(tmp_path / "other", "Another CA"),
            "elsewhere": make_pki(tmp_path / "elsewhere", server_names=("mes.plant.test",))}
    hook = Webhook(tls=made[server])
    folder = write_images(tmp_path / "cam", [False] * 3)[0].parent
    options = PublishOptions((f"https://127.0.0.1:{hook.port}/v",), ca_file=made[ca].ca,
                             drain_s=0.5, max_wait_s=0.25)
    jsonl = tmp_path / "run.jsonl"
    try:
        _sink, publish = _run(runner, folder, options, tmp_path / "o.sqlite", jsonl)
    finally:
        hook.close()
    assert hook.attempts == 0 and (publish["delivered"], publish["pending"]) == (0, 3)
    outage = _outage(jsonl)
    assert outage["pending"] == 3 and problem in outage["error"] and fix in outage["error"], \
        outage["error"]


def test_https_mutual_tls(runner, pki: Pki, tmp_path: Path) -> None:
    hook = Webhook(tls=pki, require_client_cert=True)
    folder = write_images(tmp_path / "cam", [False, False])[0].parent
    uri = f"https://localhost:{hook.port}/v"
    jsonl = tmp_path / "run.jsonl"
    try:
        _sink, without = _run(runner, folder, PublishOptions(
            (uri,), ca_file=pki.ca, drain_s=0.5, max_wait_s=0.25), tmp_path / "a.sqlite", jsonl)
        _sink, publish = _run(runner, folder, PublishOptions(
            (uri,), ca_file=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key),
            tmp_path / "b.sqlite")
    finally:
        hook.close()
    assert (without["delivered"], without["pending"]) == (0, 2)
    assert "give --publish-client-cert FILE and --publish-client-key FILE" in \
        _outage(jsonl)["error"]
    assert (publish["delivered"], publish["pending"]) == (2, 0)
    assert [m["frame"] for m in hook.received] == [0, 1]
