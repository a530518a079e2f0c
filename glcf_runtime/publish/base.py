"""What every publisher is: ``send(message)`` returns once the far end acknowledged it, or
raises ``SendFailed`` (``permanent``: never resend it). Also how ``--publish`` URIs are read:
credentials come from the environment or a secret file, never from the command line."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from glcf_runtime.errors import ConfigError
from glcf_runtime.sources import redact

SCHEMES = ("mqtt", "mqtts", "http", "https", "opc.tcp")
SECRET_ENV = {"mqtt": "GLCF_MQTT_PASSWORD", "mqtts": "GLCF_MQTT_PASSWORD",
              "http": "GLCF_WEBHOOK_TOKEN", "https": "GLCF_WEBHOOK_TOKEN",
              "opc.tcp": "GLCF_OPCUA_PASSWORD"}
SEND_TIMEOUT_S = 5.0  # one attempt: connect, send and wait for the acknowledgement


class SendFailed(Exception):
    """A send that was not acknowledged; ``permanent``: the far end refused this message."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class PublishOptions:
    """The publishing options of ``glcf inspect`` (see docs/station.md)."""

    uris: tuple[str, ...]
    mqtt_retain_last: bool = False
    opcua_nodes: tuple[str, ...] = ()  # KEY=NODEID
    secret_file: Path | None = None  # the password / token of every publisher that needs one
    deadline_ms: float | None = None  # a message acknowledged later than this after capture is late
    drain_s: float = 10.0  # at the end, wait this long for pending deliveries
    max_wait_s: float = 10.0  # longest wait between attempts (doubles from 0.25 s)
    ca_file: Path | None = None  # TLS outputs trust only these CA certificates (PEM), if given
    client_cert: Path | None = None  # mutual TLS: the station's certificate (PEM) ...
    client_key: Path | None = None  # ... and its unencrypted private key (PEM)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    opcua_security: str | None = None  # POLICY,MODE of opc.tcp outputs; None: no security


class Publisher(ABC):
    """One destination; used by one delivery thread only.

    Attributes:
        name: the URI with user information masked (records, logs, metrics, outbox rows).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.name = mask(uri)

    @abstractmethod
    def send(self, message: dict) -> None:
        """Deliver ``message`` (JSON-ready) and wait for its acknowledgement; SendFailed if not."""

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Disconnect (idempotent)."""


def mask(uri: str) -> str:
    """``mqtt://line:pw@host/t`` → ``mqtt://***@host/t``: no user information in any output."""
    return redact(uri)


def split(uri: str) -> SplitResult:
    """The URI's parts; ConfigError for an unknown scheme, a missing host or a password in it."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname:
        raise ConfigError(f"--publish {mask(uri)}: give mqtt://HOST:PORT/TOPIC, mqtts://…, "
                          "http(s)://HOST/PATH (a webhook) or opc.tcp://HOST:PORT")
    if parts.password is not None:
        raise ConfigError(
            f"--publish {mask(uri)}: a password on the command line is visible to every user "
            f"(ps, shell history); drop it from the URI (keep the user: "
            f"{scheme}://{parts.username}@{parts.hostname}…) and set {SECRET_ENV[scheme]} in the "
            "environment, or give --publish-secret-file FILE")
    try:
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise ConfigError(f"--publish {mask(uri)}: the port is not a number 0-65535") from None
    return parts


def secret(scheme: str, options: PublishOptions) -> str | None:
    """The password / token for ``scheme``: ``--publish-secret-file``, else its variable."""
    if options.secret_file is not None:
        try:
            return options.secret_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--publish-secret-file {options.secret_file}: cannot read it "
                              f"({exc.strerror or exc})") from None
    return options.env.get(SECRET_ENV[scheme]) or None
