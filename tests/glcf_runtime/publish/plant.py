"""Real plant-side servers for the publishing tests: a Mosquitto broker (a subprocess on a free
loopback port; with ``tls``, a TLS listener), an MQTT subscriber, a webhook receiver
(http.server; with ``tls``, HTTPS) and an OPC UA server (asyncua's, in this process)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pytest

if TYPE_CHECKING:
    from tests.glcf_runtime.publish.pki import Pki

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)
needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto is not installed (apt-get install mosquitto; .ci/run does)")


def slow_folder(folder: Path, n: int, side: int = 1000) -> Path:
    """n hard links to one side×side noise PNG (decoding each takes milliseconds)."""
    folder.mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    first = folder / "f0000.png"
    cv2.imwrite(str(first), noise)
    for i in range(1, n):
        os.link(first, folder / f"f{i:04d}.png")
    return folder


def assert_refused_before_the_model_loads(args: list[str], message: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``glcf inspect MISSING.onnx … ARGS`` exits 2 naming ``message``, and no outbox is made."""
    import sys

    from glcf_cli import main

    monkeypatch.setattr(sys, "argv", ["glcf", "inspect", str(tmp_path / "missing.onnx"),
                                      "--source", str(tmp_path), "--jsonl",
                                      str(tmp_path / "run.jsonl"), *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert exit_info.value.code == 2 and message in err, err
    assert not (tmp_path / "run.jsonl.outbox.sqlite").exists()


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def dedup(messages: list[dict]) -> list[dict]:
    """The first arrival of each message_id, in arrival order."""
    seen: set[str] = set()
    kept = []
    for message in messages:
        if message["message_id"] not in seen:
            seen.add(message["message_id"])
            kept.append(message)
    return kept


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Mosquitto:
    """A broker on ``port`` that keeps persistent sessions across a restart (SIGTERM saves them)."""

    def __init__(self, folder: Path, port: int | None = None, tls: Pki | None = None,
                 require_client_cert: bool = False) -> None:
        self.port = port or free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "mosquitto.conf"
        config = (f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                  f"persistence_location {folder}/\nmax_queued_messages 100000\n")
        if tls is not None:  # run as root, stay root: the keys in the test's folder stay readable
            config += (f"cafile {tls.ca}\ncertfile {tls.server_cert}\nkeyfile {tls.server_key}\n"
                       f"require_certificate {str(require_client_cert).lower()}\n"
                       + ("user root\n" if os.geteuid() == 0 else ""))
        self.config.write_text(config)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Subscriber:
    """Collects every message on ``topic`` (QoS 1, a persistent session: none lost while the
    broker restarts)."""

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber",
                 tls: Pki | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict, bool]] = []  # (topic, payload, retained)
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(0.1, 0.5)
        if tls is not None:
            self.client.tls_set(str(tls.ca), str(tls.client_cert), str(tls.client_key))
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: object, _userdata: object, msg: object) -> None:
        with self.lock:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def payloads(self, topic: str | None = None) -> list[dict]:
        with self.lock:
            return [p for t, p, _r in self.messages if topic is None or t == topic]

    def wait_for(self, count: int, timeout: float = 30.0, topic: str | None = None) -> list[dict]:
        """The messages once ``count`` distinct message ids arrived (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while len(dedup(self.payloads(topic))) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.payloads(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Webhook:
    """An HTTP receiver: answers ``status`` to every POST and keeps the 2xx-answered bodies."""

    def __init__(self, port: int | None = None, status: int = 200, tls: Pki | None = None,
                 require_client_cert: bool = False) -> None:
        self.status, self.received, self.headers, self.attempts = status, [], [], 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = hook.status(body) if callable(hook.status) else hook.status
                hook.attempts += 1
                if 200 <= status < 300:
                    hook.received.append(body)
                    hook.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.port = self.server.server_address[1]
        if tls is not None:  # HTTPS: each connection's handshake runs when it is accepted
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server_cert, tls.server_key)
            if require_client_cert:
                context.load_verify_locations(tls.ca)
                context.verify_mode = ssl.CERT_REQUIRED
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class OpcUaServer:
    """asyncua's server with writable variables Station1.{Reject, Score, Frame} in ns=2."""

    def __init__(self) -> None:
        from asyncua import ua
        from asyncua.sync import Server

        self.port = free_port()
        self.url = f"opc.tcp://127.0.0.1:{self.port}"
        self.server = Server()
        self.server.set_endpoint(self.url + "/")
        idx = self.server.register_namespace("urn:glcf:test")
        station = self.server.nodes.objects.add_object(idx, "Station1")
        self.vars = {}
        for name, value, kind in (("Reject", False, ua.VariantType.Boolean),
                                  ("Score", 0.0, ua.VariantType.Double),
                                  ("Frame", 0, ua.VariantType.Int32)):
            var = station.add_variable(ua.NodeId(f"Station1.{name}", idx), name,
                                       ua.Variant(value, kind))
            var.set_writable()
            self.vars[name] = var
        self.ns = idx
        self.server.start()

    def node(self, name: str) -> str:
        return f"ns={self.ns};s=Station1.{name}"

    def read(self, name: str) -> object:
        return self.vars[name].read_value()

    def close(self) -> None:
        self.server.stop()
