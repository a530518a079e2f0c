"""Webhook: each message is a JSON POST; any 2xx acknowledges it.

408, 429, 5xx and network errors are retried (the delivery thread backs off); any other answer
(3xx, 4xx) refuses the message for good: it stays in the outbox's ``failed`` table, becomes a
``publish_refused`` record and is counted, and the next message goes on. The bearer token comes
from ``GLCF_WEBHOOK_TOKEN`` or ``--publish-secret-file``. ``Idempotency-Key`` carries the
message id, so a receiver can drop a resent message. ``https://`` verifies the server's
certificate and hostname (``tls``: the system's CA certificates, or only ``--publish-ca``).
"""

from __future__ import annotations

import http.client
import json
import ssl

from glcf_runtime.publish.base import (
    SEND_TIMEOUT_S,
    Publisher,
    PublishOptions,
    SendFailed,
    secret,
    split,
)
from glcf_runtime.publish.tls import tls_context, tls_failure

RETRIED = {408, 429}  # client errors that are worth another try


class WebhookPublisher(Publisher):
    def __init__(self, uri: str, options: PublishOptions) -> None:
        super().__init__(uri)
        parts = split(uri)
        self.https = parts.scheme.lower() == "https"
        self.host, self.port = parts.hostname, parts.port
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.token = secret(parts.scheme.lower(), options)
        self.options = options
        self._tls = tls_context(options) if self.https else None
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.https:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=SEND_TIMEOUT_S, context=self._tls)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=SEND_TIMEOUT_S)
        return self._conn

    def send(self, message: dict) -> None:
        body = json.dumps(message, allow_nan=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": message["message_id"]}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn = self._connection()
            conn.request("POST", self.target, body, headers)
            response = conn.getresponse()
            response.read()
        except ssl.SSLError as exc:
            self.close()
            raise SendFailed(f"{self.host}:{self.port}: "
                             f"{tls_failure(exc, 'the server', self.options)}") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise SendFailed(f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}") from None
        status = response.status
        if response.will_close:
            self.close()
        if 200 <= status < 300:
            return
        permanent = status < 500 and status not in RETRIED
        raise SendFailed(f"HTTP {status} {response.reason}", permanent=permanent)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
