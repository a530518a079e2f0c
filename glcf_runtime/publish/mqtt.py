"""MQTT (paho-mqtt 2.x): QoS 1, a message is acknowledged when the broker's PUBACK arrives.

``mqtt://[user@]host[:1883]/topic`` (``mqtts://``: TLS, port 8883 by default, the system's CA
certificates or only those of ``--publish-ca``, see ``tls``). The password comes from
``GLCF_MQTT_PASSWORD`` or ``--publish-secret-file``.
Any failure drops the connection; the next attempt opens a new one (clean session), so the
only resends are the delivery thread's own.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from typing import Any

from glcf_runtime.errors import ConfigError
from glcf_runtime.publish.base import (
    SEND_TIMEOUT_S,
    Publisher,
    PublishOptions,
    SendFailed,
    secret,
    split,
)
from glcf_runtime.publish.tls import tls_context, tls_failure
from glcf_runtime.requires import require

PUBACK_POLL_S = 0.02  # how often a send waiting for its PUBACK looks at the connection


class MqttPublisher(Publisher):
    """Publishes each message on ``topic``; with ``retain_last`` also, retained, on
    ``topic/<camera>/last`` (``/``, ``#`` and ``+`` in the camera's name become ``_``)."""

    def __init__(self, uri: str, options: PublishOptions) -> None:
        super().__init__(uri)
        self.mqtt = require("paho.mqtt.client", "plant", who="--publish mqtt://")
        parts = split(uri)
        self.tls = parts.scheme.lower() == "mqtts"
        self.host, self.port = parts.hostname, parts.port or (8883 if self.tls else 1883)
        self.topic = parts.path.lstrip("/")
        if not self.topic or any(c in self.topic for c in "#+"):
            raise ConfigError(f"--publish {self.name}: name the topic, e.g. "
                              f"mqtt://{self.host}:{self.port}/plant/station1/verdicts (no # or +)")
        self.user = parts.username
        self.password = secret(parts.scheme.lower(), options) if self.user else None
        self.retain_last = options.mqtt_retain_last
        self.options = options
        self._tls = tls_context(options) if self.tls else None
        self._client = None
        self._connected = threading.Event()
        self._refused: str | None = None

    def _connect(self) -> Any:  # paho's Client
        mqtt = self.mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                             clean_session=True)
        if self.user:
            client.username_pw_set(self.user, self.password)
        if self._tls is not None:
            client.tls_set_context(self._tls)
        self._connected.clear()
        self._refused = None

        answered = threading.Event()

        def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
            if getattr(reason, "is_failure", False):
                self._refused = str(reason)
            else:
                self._connected.set()
            answered.set()

        def on_disconnect(*_args: object) -> None:
            self._connected.clear()

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        try:
            client.connect(self.host, self.port, keepalive=15)
        except ssl.SSLError as exc:  # a handshake that failed: name the certificate problem
            raise SendFailed(f"{self.host}:{self.port}: "
                             f"{tls_failure(exc, 'the broker', self.options)}") from None
        except OSError as exc:
            raise SendFailed(f"cannot connect to {self.host}:{self.port} ({exc.strerror or exc})") from None
        client.loop_start()
        if not answered.wait(SEND_TIMEOUT_S) or not self._connected.is_set():
            client.disconnect()
            client.loop_stop()
            raise SendFailed(f"the broker {self.host}:{self.port} refused the connection "
                             f"({self._refused or 'no answer'})")
        return client

    def send(self, message: dict) -> None:
        if self._client is None or not self._connected.is_set():
            self.close()
            self._client = self._connect()
        payload = json.dumps(message, allow_nan=False)
        infos = [self._client.publish(self.topic, payload, qos=1)]
        if self.retain_last:
            camera = re.sub(r"[/#+]", "_", str(message["camera"]))  # one topic level
            infos.append(self._client.publish(f"{self.topic}/{camera}/last", payload, qos=1,
                                              retain=True))
        why = self._wait(infos)
        if why is not None:
            self.close()  # no reconnection by paho: the delivery thread resends
            raise SendFailed(f"{self.host}:{self.port}: {why}")

    def _wait(self, infos: list[Any]) -> str | None:
        """None once every PUBACK arrived; else why not (connection lost, timeout)."""
        deadline = time.monotonic() + SEND_TIMEOUT_S
        try:
            for info in infos:
                while not info.is_published():
                    if not self._connected.is_set():
                        return "the connection to the broker was lost before its PUBACK"
                    if time.monotonic() > deadline:
                        return f"no PUBACK within {SEND_TIMEOUT_S:g} s"
                    info.wait_for_publish(PUBACK_POLL_S)
        except (RuntimeError, ValueError) as exc:  # paho: not connected, or its queue is full
            return str(exc)
        return None

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
