"""`glcf inspect --publish` as a process: SIGKILLed while its webhook is down, the next run on
the same outbox delivers the rest, old messages first, nothing lost; a full outbox stops the run
with exit code 5 and an alarm record; passwords on the command line are refused, and user
information is masked in the records; mqtts:// trusts the plant's CA given with --publish-ca,
and a TLS file that cannot be used is refused before the model loads."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from glcf_bench.fixtures.contract_model import write_images, write_model
from glcf_cli import main
from tests.glcf_runtime.publish.pki import Pki, make_pki
from tests.glcf_runtime.publish.plant import (
    Mosquitto,
    Subscriber,
    Webhook,
    assert_refused_before_the_model_loads,
    dedup,
    free_port,
    needs_mosquitto,
    records,
    slow_folder,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("export"))


def _glcf(*args: str) -> list[str]:
    return [sys.executable, "-m", "glcf_cli", "inspect", *args]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200", **extra}


def test_sigkill_mid_run_then_the_next_run_delivers_everything_old_first(model: Path,
                                                                         tmp_path: Path) -> None:
    port = free_port()  # nothing listens there during the first run
    jsonl, hook_uri = tmp_path / "run.jsonl", f"http://127.0.0.1:{port}/verdicts"
    frames = slow_folder(tmp_path / "frames", 400)
    first = subprocess.Popen(_glcf(str(model), "--source", str(frames), "--jsonl", str(jsonl),
                                   "--publish", hook_uri, "--threads", "1"),
                             cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (jsonl.exists() and jsonl.read_text().count("\n") >= 8):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.kill()
        first.stderr.close()
    scored = [r["frame"] for r in records(jsonl) if "score" in r]
    assert 8 <= len(scored) < 400 and first.returncode == -signal.SIGKILL

    hook = Webhook(port=port)
    more = write_images(tmp_path / "more", [False, True, False])[0].parent
    summary = tmp_path / "summary.json"
    try:
        second = subprocess.run(
            _glcf(str(model), "--source", str(more), "--jsonl", str(jsonl), "--publish",
                  hook_uri, "--summary-json", str(summary), "--drain-s", "30"),
            cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    finally:
        hook.close()
    assert second.returncode == 0, second.stderr
    got = dedup(hook.received)
    runs = list(dict.fromkeys(m["message_id"].split(":")[0] for m in got))
    assert len(runs) == 2  # the killed run's messages, with their own run id, then this run's
    old = [m for m in got if m["message_id"].startswith(runs[0])]
    new = [m for m in got if m["message_id"].startswith(runs[1])]
    assert got == old + new
    # every verdict the killed run wrote to the JSONL was in the outbox first: none is lost
    assert [m["frame"] for m in old][: len(scored)] == scored
    assert [m["frame"] for m in old] == list(range(len(old)))
    assert [m["frame"] for m in new] == [0, 1, 2] and new[1]["anomalous"] is True
    assert all(m["camera"] == str(frames) for m in old)
    report = json.loads(summary.read_text())
    assert report["exit_code"] == 0
    assert report["publish"]["resumed"] == len(old) and report["publish"]["pending"] == 0
    assert "delivered first" in second.stderr


def test_full_outbox_exits_5_with_an_alarm_record(model: Path, tmp_path: Path) -> None:
    frames = write_images(tmp_path / "frames", [False] * 300)[0].parent
    jsonl, summary = tmp_path / "run.jsonl", tmp_path / "summary.json"
    done = subprocess.run(
        _glcf(str(model), "--source", str(frames), "--jsonl", str(jsonl),
              "--publish", f"http://station@127.0.0.1:{free_port()}/v", "--outbox-max-mb", "0.06",
              "--drain-s", "0", "--summary-json", str(summary)),
        cwd=REPO_ROOT, env=_env(GLCF_WEBHOOK_TOKEN="tok-123"), capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 5, done.stderr
    assert "ALARM" in done.stderr and "raise --outbox-max-mb" in done.stderr
    lines = records(jsonl)
    alarm = next(r for r in lines if r.get("event") == "outbox_full")
    scored = [r for r in lines if "score" in r]
    assert alarm["alarm"] is True and alarm["pending"] == len(scored) and 0 < len(scored) < 300
    assert alarm["frame"] == len(scored)  # the frame that did not fit is in no output
    outage = next(r for r in lines if r.get("event") == "publish_outage")
    assert outage["until"] is None and outage["pending"] == len(scored)
    assert outage["publisher"].startswith("http://***@127.0.0.1:")
    text = jsonl.read_text() + done.stdout + done.stderr
    assert "station@" not in text and "tok-123" not in text
    report = json.loads(summary.read_text())
    assert report["exit_code"] == 5 and report["publish"]["outbox_full"] is True
    assert report["publish"]["pending"] == len(scored)


@pytest.mark.parametrize(("args", "message"), [
    (["--publish", "mqtt://line:hunter2xyz@127.0.0.1:1883/v", "--jsonl", "J"],
     "set GLCF_MQTT_PASSWORD in the environment"),
    (["--publish", "https://u:hunter2xyz@example.com/hook", "--jsonl", "J"],
     "set GLCF_WEBHOOK_TOKEN"),
    (["--publish", "http://127.0.0.1:9/v"], "add --jsonl FILE"),
    (["--opcua-node", "verdict=ns=2;s=X"], "--opcua-node is an option of --publish"),
    (["--publish", "ftp://127.0.0.1/v", "--jsonl", "J"], "give mqtt://HOST:PORT/TOPIC"),
    (["--publish", "opc.tcp://127.0.0.1:4840", "--opcua-node", "reject=ns=2;s=R", "--jsonl", "J"],
     "KEY one of verdict, score, frame"),
    (["--publish", "mqtt://127.0.0.1:1883/", "--jsonl", "J"], "name the topic"),
])
def test_refused_before_the_model_loads(args: list[str], message: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(tmp_path / "run.jsonl") if a == "J" else a for a in args]
    monkeypatch.setattr(sys, "argv", ["glcf", "inspect", str(tmp_path / "missing.onnx"),
                                      "--source", str(tmp_path), *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == 2 and message in err, err
    assert "hunter2xyz" not in err
    assert not (tmp_path / "run.jsonl.outbox.sqlite").exists()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@needs_mosquitto
def test_mqtts_with_the_plant_ca(model: Path, pki: Pki, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", tls=pki).start()
    subscriber = Subscriber(broker.port, "line/#", tls=pki)
    frames = write_images(tmp_path / "frames", [False, True, False])[0].parent
    summary = tmp_path / "summary.json"
    try:
        done = subprocess.run(
            _glcf(str(model), "--source", str(frames), "--outbox", str(tmp_path / "o.sqlite"),
                  "--publish", f"mqtts://localhost:{broker.port}/line/v", "--publish-ca",
                  str(pki.ca), "--summary-json", str(summary)),
            cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=120)
        got = subscriber.wait_for(3, topic="line/v", timeout=10)
    finally:
        subscriber.close()
        broker.stop()
    assert done.returncode == 0, done.stderr
    assert [m["frame"] for m in dedup(got)] == [0, 1, 2]
    publish = json.loads(summary.read_text())["publish"]
    assert (publish["delivered"], publish["pending"], publish["failures"]) == (3, 0, 0)


def _tls_files(pki: Pki, folder: Path) -> dict[str, str]:
    """Placeholders of the TLS refusals below → files."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.client_key.read_bytes(), None)
    (folder / "encrypted.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    (folder / "notes.txt").write_text("the plant's CA, ask IT\n")
    return {"CA": str(pki.ca), "CERT": str(pki.client_cert), "KEY": str(pki.client_key),
            "OTHERKEY": str(pki.server_key), "ENCKEY": str(folder / "encrypted.key"),
            "TXT": str(folder / "notes.txt"), "MISSING": str(folder / "ca.pem"), "DIR": str(folder),
            "UNREADABLE": "/proc/self/mem"}


MQTTS = "mqtts://127.0.0.1:8883/v"


@pytest.mark.parametrize(("args", "message"), [
    (["--publish", MQTTS, "--publish-ca", "MISSING"], "ca.pem: no such file; give the PEM file"),
    (["--publish", MQTTS, "--publish-ca", "DIR"], ": not a file; give the PEM file"),
    (["--publish", MQTTS, "--publish-ca", "UNREADABLE"], "/proc/self/mem: cannot read it"),
    (["--publish", MQTTS, "--publish-ca", "TXT"], "notes.txt: holds no PEM certificate"),
    (["--publish", MQTTS, "--publish-ca", "KEY"], "client.key: holds no PEM certificate"),
    (["--publish", "mqtt://127.0.0.1:1883/v", "--publish-ca", "CA"],
     "--publish-ca is for the TLS outputs: give --publish mqtts://"),
    (["--publish", "opc.tcp://127.0.0.1:4840", "--opcua-node", "verdict=ns=2;s=R",
      "--publish-ca", "CA"], "--publish-ca is for the TLS outputs"),
    (["--publish-ca", "CA"], "--publish-ca is an option of --publish: add --publish URI"),
    (["--publish", "https://127.0.0.1/v", "--publish-client-key", "KEY"],
     "mutual TLS needs both --publish-client-cert FILE"),
    (["--publish", "https://127.0.0.1/v", "--publish-client-cert", "CERT",
      "--publish-client-key", "ENCKEY"], "encrypted.key: the key is encrypted"),
    (["--publish", "https://127.0.0.1/v", "--publish-client-cert", "CERT",
      "--publish-client-key", "OTHERKEY"], "server.key: cannot use them"),
])
def test_tls_files_refused_before_the_model_loads(
        args: list[str], message: str, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    files = _tls_files(pki, tmp_path)
    assert_refused_before_the_model_loads([files.get(a, a) for a in args], message, tmp_path,
                                          monkeypatch, capsys)


def _scrape(url: str) -> dict[str, float]:
    """``/metrics`` through prometheus_client's own parser: ``name{label="value",…}`` → value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return {k: v for k, v in values.items() if k.startswith("glcf_")}


def test_metrics_show_pending_failures_and_the_ack_histogram(model: Path, tmp_path: Path) -> None:
    frames, port = slow_folder(tmp_path / "frames", 1000), free_port()
    command = _glcf(str(model), "--source", str(frames), "--outbox", str(tmp_path / "o.sqlite"),
                    "--publish", f"http://127.0.0.1:{port}/v", "--serve", "127.0.0.1:0",
                    "--drain-s", "0", "--threads", "1")
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(PYTHONUNBUFFERED="1"),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = next(m.group(1) for line in process.stdout
                   if (m := re.search(r"live page (http://127\.0\.0\.1:\d+/)", line)))
        failures = f'glcf_publish_failures_total{{publisher="http://127.0.0.1:{port}/v"}}'
        deadline, values = time.monotonic() + 30, {}
        while time.monotonic() < deadline and not (
                values.get(failures, 0) >= 1 and values.get("glcf_outbox_pending", 0) >= 1):
            time.sleep(0.1)
            values = _scrape(url + "metrics")
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert values["glcf_outbox_pending"] >= 1 and values[failures] >= 1, values
    assert any(k.startswith("glcf_capture_to_ack_seconds_bucket{") for k in values)
    assert any(k.startswith("glcf_publish_late_total{") for k in values)
