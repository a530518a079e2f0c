"""The live page's HTTP server: the standard library's ``ThreadingHTTPServer`` on a daemon thread.

No third-party web framework: the runtime stays small (a Jetson installs numpy, OpenCV and a
backend), and ``http.server`` ships with every Python. Every route only reads ``LiveState``;
none writes files or changes the run.

| route | what |
|---|---|
| ``/`` and ``/static/*`` | the page (HTML, JS, CSS served from this package: no CDN) |
| ``/api/status`` | counters, latest frame, source state, gallery, model card, ``cameras`` (JSON) |
| ``/api/results?since=FRAME&limit=N`` | the JSON-lines records of frames after FRAME |
| ``/api/timeline`` | each camera's recent scores and the write count they reach (JSON) |
| ``/api/events?since=FRAME`` | server-sent events: status and new records, a few times a second |
|   (``after=SEQ``) | the records written after write SEQ (an event's ``seq``) instead |
| ``/frame.jpg`` | the latest annotated frame (its record in the ``X-Frame-Record`` header) |
| ``/stream.mjpg`` | the annotated frames as MJPEG, at most ``max_fps`` per second |
| ``/flagged/ID.jpg?width=W`` | a flagged frame of the gallery, full size (W: a thumbnail) |
| ``/metrics`` | Prometheus text format |
| ``/healthz`` | 200 while the source delivers, 503 otherwise; the only route without the token |

``?camera=NAME`` picks a camera on ``/frame.jpg``, ``/stream.mjpg`` (default: the first) and on
``/api/results`` and ``/api/timeline`` (default: every camera). Every route answers GET and HEAD. Who may ask (token, the page's cookie, the ``Host`` header) is
``access``'s concern. Clients cannot hold the server: a request's line and headers must arrive
within ``ServeLimits.head_timeout_s`` however slowly they trickle in, a viewer that stops reading
is dropped after ``write_timeout_s``, and at most ``max_connections`` are open at once (each is a
thread): the next one gets a 503 at once, from the accepting thread, without a thread of its own.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import CancelledError
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from glcf_runtime.backends.base import Runner
from glcf_runtime.errors import ConfigError
from glcf_runtime.requires import MissingPackage, require
from glcf_runtime.serve.access import Access, check_exposure, parse_allowed_hosts
from glcf_runtime.serve.connections import HeadReader, HttpServer, ServeLimits
from glcf_runtime.serve.state import LiveState, model_card
from glcf_runtime.sources import FrameSource
from glcf_runtime.threshold import resolve_threshold

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
FILES = {  # route -> (file in STATIC, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/tiles.js": ("tiles.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
EVENT_INTERVAL_S = 0.2  # at most 5 events a second per viewer
EVENT_RECORDS = 500  # records per event at most (a slow viewer skips older ones)
KEEPALIVE_S = 2.0  # an event at least this often (fps and uptime move on)
DEFAULT_HOST = "127.0.0.1"
FLAGGED_ROUTE = re.compile(r"^/flagged/(\d+)\.jpg$")


def parse_bind(text: str) -> tuple[str, int]:
    """``"8080"`` → ``("127.0.0.1", 8080)``; ``"0.0.0.0:8080"``, ``"[::1]:8080"`` as given.

    Raises:
        ConfigError: no port, or a port outside 0-65535.
    """
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(
            f"--serve {text!r}: give PORT or HOST:PORT, e.g. --serve 8080 (localhost only) or "
            "--serve 0.0.0.0:8080 --token T; port 0 picks a free one"
        )
    return host, int(port)


def open_live_page(
    runner: Runner,
    sources: FrameSource | Mapping[str, FrameSource],
    threshold: float | None,
    bind: str,
    token: str | None = None,
    allowed_hosts: Iterable[str] = (),
) -> LiveServer:
    """A bound (not yet serving) server for ``glcf inspect --serve``; its ``state`` is the sink.

    Args:
        runner: the open runner (for the model card).
        sources: the open source, or ``{camera name: source}`` for several cameras (for their
            up/down state; results are grouped by ``Result.source``, the camera's name).
        threshold: the ``--threshold`` override, or None: ``threshold.json``, then the metadata's
            (``resolve_threshold``, as the loop resolves it).
        bind: ``PORT`` or ``HOST:PORT`` (see ``parse_bind``).
        token: required on every route but ``/healthz`` when given.
        allowed_hosts: ``--allow-host`` names, accepted in the ``Host`` header.

    Raises:
        ConfigError: an unusable ``threshold`` or ``threshold.json``, a bad ``bind``.
    """
    choice = resolve_threshold(runner, threshold)
    host, port = parse_bind(bind)
    state = LiveState(model_card(runner, choice), sources)
    return LiveServer(state, host, port, token, allowed_hosts=allowed_hosts)


class LiveServer:
    """Serves ``state`` on ``host:port`` (port 0: a free one) from a daemon thread.

    A context manager: the socket is bound on construction (so ``url`` is known), serving starts
    with ``start()`` or ``__enter__``, and ``close()`` ends every open stream within about a
    second.

    Raises:
        ConfigError: a non-loopback host without a token, a bad ``allowed_hosts`` name, or an
            address that cannot be bound.
    """

    def __init__(
        self,
        state: LiveState,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str | None = None,
        max_fps: float = 10.0,
        allowed_hosts: Iterable[str] = (),
        limits: ServeLimits = ServeLimits(),
    ) -> None:
        check_exposure(host, token)
        allowed_hosts = parse_allowed_hosts(allowed_hosts)  # before the socket is bound
        try:
            require("prometheus_client", "runtime", who="--serve (for /metrics)")
        except MissingPackage as exc:  # an option error like the others here
            raise ConfigError(str(exc)) from None
        from glcf_runtime.serve import metrics

        self.state, self.max_fps, self.limits = state, max_fps, limits
        self.metrics, self.registry = metrics, metrics.registry(state)
        self.stopping = threading.Event()
        server_class = type("_Server", (HttpServer,), {})
        if ":" in host:
            server_class.address_family = socket.AF_INET6
        try:
            self._httpd = server_class((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"--serve {host}:{port}: cannot listen there ({exc.strerror or exc}); choose "
                "another port (0 picks a free one) or an address of this machine"
            ) from None
        self._httpd.live = self
        self._httpd.slots = threading.BoundedSemaphore(limits.max_connections)
        self.access = Access(token, host, self.port, allowed_hosts)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self) -> LiveServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                daemon=True, name="glcf-serve",
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and end open streams (idempotent)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5.0)
        self._httpd.server_close()
        self.state.release()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server: HttpServer
    server_version = "glcf"
    head_only = False  # HEAD: headers as for GET, no body

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(
            HeadReader(self.connection, self.server.live.limits.head_timeout_s)
        )

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self.head_only = True
        self.do_GET()

    def do_GET(self) -> None:
        live = self.server.live
        self.connection.settimeout(live.limits.write_timeout_s)  # the head has arrived
        url = urlsplit(self.path)
        query = parse_qs(url.query, errors="surrogateescape")  # a token's bytes, whatever they are
        try:
            if url.path == "/healthz":
                self._healthz()
            elif not live.access.host_allowed(self.headers):
                self._send_json({"error": live.access.host_refusal(self.headers, live.url)},
                                HTTPStatus.FORBIDDEN)
            elif not live.access.authorized(self.headers, query.get("token", [])):
                self._send_json(
                    {"error": "this page needs its token: add ?token=T to the URL or send the "
                              "header 'Authorization: Bearer T' (T: glcf inspect --token)"},
                    HTTPStatus.UNAUTHORIZED,
                    {"WWW-Authenticate": 'Bearer realm="glcf"'},
                )
            else:
                self._route(url.path, query)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, CancelledError):
            pass  # the viewer went away, or the server is stopping

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        state = self.server.live.state
        flagged = FLAGGED_ROUTE.match(path)
        camera = query.get("camera", [None])[-1]
        if camera is not None and state.camera(camera) is None:
            known = ", ".join(state.camera_names()) or "none yet"
            self._send_json({"error": f"no camera {camera!r}; cameras: {known}"},
                            HTTPStatus.NOT_FOUND)
        elif path in FILES:
            name, content_type = FILES[path]
            headers = {"Referrer-Policy": "no-referrer"}  # the page's URL may hold the token
            cookie = self.server.live.access.page_cookie(query.get("token", []))
            if path == "/" and cookie is not None:  # the page's own loads carry it, not the token
                headers["Set-Cookie"] = cookie
            self._send(HTTPStatus.OK, (STATIC / name).read_bytes(), content_type, headers)
        elif path == "/api/status":
            self._send_json(state.status())
        elif path == "/api/results":
            since, limit = _int(query, "since", -1), _int(query, "limit", None)
            if since is None:
                self._send_json({"error": "since must be a frame index"}, HTTPStatus.BAD_REQUEST)
            else:
                self._send_json(state.results(since, limit, camera))
        elif path == "/api/timeline":
            self._send_json(state.timeline(camera))
        elif path == "/api/events":
            self._events(_int(query, "since", -1), _int(query, "after", None))
        elif path == "/metrics":
            live = self.server.live
            self._send(HTTPStatus.OK, live.metrics.render(live.registry), live.metrics.CONTENT_TYPE)
        elif path == "/frame.jpg":
            self._frame(camera)
        elif path == "/stream.mjpg":
            self._stream(camera)
        elif flagged is not None:
            width = _int(query, "width", None)
            data = state.flagged_jpeg(int(flagged.group(1)), None if width is None else max(64, width))
            if data is None:
                self._send_json({"error": f"{path} is no longer in the gallery"}, HTTPStatus.NOT_FOUND)
            else:
                self._send(HTTPStatus.OK, data, "image/jpeg", {"Cache-Control": "max-age=3600"})
        else:
            self._send_json({"error": f"no route {path}; see /"}, HTTPStatus.NOT_FOUND)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in {"Cache-Control": "no-store", **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if not self.head_only:
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = HTTPStatus.OK, headers: dict | None = None) -> None:
        body = json.dumps(data, allow_nan=False).encode()
        self._send(status, body, "application/json", headers)

    def _healthz(self) -> None:
        source = self.server.live.state.source_state()
        up, down = source["up"], source.get("down")
        body = b"ok\n" if up else f"cameras down: {', '.join(down)}\n".encode() if down else (
            b"source down\n")
        self._send(HTTPStatus.OK if up else HTTPStatus.SERVICE_UNAVAILABLE, body, "text/plain")

    def _frame(self, camera: str | None) -> None:
        found = self.server.live.state.latest_jpeg(camera)
        if found is None:
            self._send_json({"error": "no frame scored yet"}, HTTPStatus.SERVICE_UNAVAILABLE,
                            {"Retry-After": "1"})
        else:
            seq, record, data = found
            headers = {"X-Frame-Seq": str(seq), "X-Frame-Record": json.dumps(record)}
            self._send(HTTPStatus.OK, data, "image/jpeg", headers)

    def _events(self, since: int | None, after: int | None) -> None:
        """Server-sent events: ``data: {"status": …, "records": […], "seq": S}`` until the run
        ends (S: the write the records reach)."""
        live, state = self.server.live, self.server.live.state
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.head_only:
            return
        seen, records = state.updates(after, -1 if since is None else since)
        while not live.stopping.is_set():
            payload = {"status": state.status(), "records": records[-EVENT_RECORDS:], "seq": seen}
            self.wfile.write(f"data: {json.dumps(payload, allow_nan=False)}\n\n".encode())
            self.wfile.flush()
            if not payload["status"]["running"]:
                self.wfile.write(b"event: end\ndata: {}\n\n")
                return
            if live.stopping.wait(EVENT_INTERVAL_S):
                return
            state.wait(seen, KEEPALIVE_S)
            seen, records = state.updates(seen)

    def _stream(self, camera: str | None) -> None:
        """MJPEG: the newest annotated frame of ``camera`` (None: the first) whenever it
        changed, at most ``max_fps`` a second."""
        live = self.server.live
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.head_only:
            return
        sent = 0
        while not live.stopping.is_set():
            live.state.wait(sent, 1.0)
            found = live.state.latest_jpeg(camera)
            if found is not None and found[0] != sent:
                sent, _, data = found
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                self.wfile.write(head.encode() + data + b"\r\n")
                self.wfile.flush()
            elif live.state.closed:
                return
            if live.stopping.wait(1.0 / live.max_fps):
                return


def _int(query: dict[str, list[str]], key: str, default: int | None) -> int | None:
    values = query.get(key)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        return None
