"""How the live server holds its connections: a thread each, up to a cap, with deadlines.

``ThreadingHTTPServer`` alone starts a thread for every connection and waits for its request
forever: 300 clients that send half a request hold 300 threads. Here a request's line and
headers must arrive within ``head_timeout_s`` in all, however slowly they trickle in (one
deadline, not a timeout per read); a viewer that takes nothing for ``write_timeout_s`` is
dropped; and at most ``max_connections`` are open at once. The next one gets a 503 at once from
the accepting thread, which never blocks on it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from glcf_runtime.errors import ConfigError

if TYPE_CHECKING:
    from glcf_runtime.serve.server import LiveServer

log = logging.getLogger(__name__)
BUSY_LOG_S = 60.0  # a refused connection is logged at most this often


@dataclass(frozen=True)
class ServeLimits:
    """What the server's clients may hold. A page holds up to 6 connections (the browser's limit
    per host; one is the event stream), so the default suits ~10 viewers and a scraper."""

    max_connections: int = 64  # open at once, one thread each; beyond: 503 at once
    head_timeout_s: float = 10.0  # a request line and headers must arrive within this in all
    write_timeout_s: float = 30.0  # a viewer that takes nothing for this long is dropped

    def __post_init__(self) -> None:
        if self.max_connections < 1 or not self.head_timeout_s > 0 or not self.write_timeout_s > 0:
            raise ConfigError(f"{self}: give at least 1 connection and timeouts above 0 s")


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a viewer's open stream never keeps the process alive
    request_queue_size = 64  # connections the kernel holds until accepted (socketserver: 5)
    live: LiveServer
    slots: threading.BoundedSemaphore
    busy_logged = -BUSY_LOG_S

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection while a slot is free; else a 503 from this thread."""
        if not self.slots.acquire(blocking=False):
            self._refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()  # no thread started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def _refuse(self, request: socket.socket) -> None:
        cap = self.live.limits.max_connections
        if time.monotonic() - self.busy_logged >= BUSY_LOG_S:
            self.busy_logged = time.monotonic()
            log.warning("live page: %d connections open, the most it keeps; refusing more", cap)
        body = f"busy: {cap} connections are open, the most this server keeps; retry shortly\n"
        head = (
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 2\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # never block: the client may be one that hangs
            request.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                request.recv(65536)  # what arrived: closing on unread bytes resets the connection
            request.send((head + body).encode())


class HeadReader(io.RawIOBase):
    """A connection's reading side with one deadline for all of it (the request line and headers:
    no route reads a body), so a client that trickles bytes cannot hold a thread for longer."""

    def __init__(self, connection: socket.socket, seconds: float) -> None:
        self._connection, self._deadline = connection, time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's head did not arrive in time")
        self._connection.settimeout(left)
        return self._connection.recv_into(buffer)
