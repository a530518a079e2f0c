"""Who and what the live server lets in: the token (query, UTF-8 Bearer header, the page's
cookie), the Host header (DNS rebinding), HEAD, and clients that hold connections open (real
sockets on 127.0.0.1 that send half a request and hang, or trickle it in byte by byte)."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest

from glcf_bench.fixtures.contract_model import write_model
from glcf_runtime.backends import OnnxRuntimeRunner
from glcf_runtime.errors import ConfigError
from glcf_runtime.serve import LiveServer, LiveState, ServeLimits, model_card
from glcf_runtime.serve.access import parse_allowed_hosts

TOKEN = "Zoë-ключ-🔑"  # not ASCII: the query string and the Bearer header carry it as UTF-8
HALF_REQUEST = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # no blank line: never ends


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> dict:
    with OnnxRuntimeRunner(write_model(tmp_path_factory.mktemp("model")), threads=1) as runner:
        return model_card(runner, runner.threshold)


@pytest.fixture
def open_server(card: dict) -> Iterator[LiveServer]:
    """A started server on 127.0.0.1 with no loop behind it (the routes still answer)."""
    with LiveServer(LiveState(card)) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(card: dict) -> Iterator[LiveServer]:
    with LiveServer(LiveState(card), token=TOKEN) as server:
        yield server


def request(
    port: int,
    path: str,
    host: str | None = "127.0.0.1",
    method: str = "GET",
    headers: dict[str, str | bytes] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """``(status, headers, body)``; ``host`` None sends no Host header; byte header values go out
    as they are (a UTF-8 Bearer token)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        for key, value in (headers or {}).items():
            connection.putheader(key, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def half_open(port: int) -> socket.socket:
    """A connection that sent half a request and waits (a slow or malicious client)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(HALF_REQUEST)
    return sock


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (EOF or reset), reading whatever it sends."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept a half-open connection for {limit:g} s") from None
    return time.monotonic() - start


def serving_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_half_open_requests_are_closed_after_the_head_timeout(card: dict) -> None:
    limits = ServeLimits(head_timeout_s=0.5)
    with LiveServer(LiveState(card), limits=limits) as server:
        socks = [half_open(server.port) for _ in range(5)]
        try:
            waited = [seconds_until_closed(s, 5.0) for s in socks]
        finally:
            for s in socks:
                s.close()
        assert max(waited) < 3.0, waited
        assert request(server.port, "/api/status")[0] == 200  # the server still answers


def test_a_trickling_client_is_cut_at_the_deadline(card: dict) -> None:
    """One byte every 0.1 s never lets a per-read timeout expire: the head has one deadline."""
    with LiveServer(LiveState(card), limits=ServeLimits(head_timeout_s=1.0)) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.settimeout(0.1)
        start = time.monotonic()
        closed = None
        try:
            while time.monotonic() - start < 4.0 and closed is None:
                try:
                    sock.send(b"a")
                    if sock.recv(1) == b"":
                        closed = time.monotonic() - start
                except TimeoutError:
                    continue
                except OSError:  # reset, broken pipe: closed by the server
                    closed = time.monotonic() - start
        finally:
            sock.close()
        assert closed is not None, "a trickling client held its connection for 4 s"
        assert 0.8 < closed < 3.0, closed


def test_connections_beyond_the_cap_are_refused_at_once(card: dict) -> None:
    """80 half-open connections against the default cap (64): 64 are held, each by one thread
    until its head timeout; the other 16 get a 503 at once, without a thread."""
    cap = ServeLimits().max_connections
    with LiveServer(LiveState(card)) as server:
        before = serving_threads()
        socks = [half_open(server.port) for _ in range(cap + 16)]
        try:
            refused = _answered(socks, 16, timeout=5.0)
            assert len(refused) == 16, f"{len(refused)} of {len(socks)} refused"
            for sock in refused:
                answer = _read_all(sock)
                assert answer.startswith(b"HTTP/1.0 503"), answer[:80]
                assert b"Retry-After:" in answer and f"{cap} connections".encode() in answer
            assert serving_threads() - before <= cap
            assert request(server.port, "/api/status")[0] == 503  # full: refused, not queued
        finally:
            for s in socks:
                s.close()
        _wait(lambda: request(server.port, "/api/status")[0] == 200, "a free slot after close")
        _wait(lambda: serving_threads() == before, "every connection's thread to end")


def _answered(socks: list[socket.socket], count: int, timeout: float) -> list[socket.socket]:
    """The sockets the server wrote to (or closed) within ``timeout``, once ``count`` have."""
    deadline = time.monotonic() + timeout
    while len(select.select(socks, [], [], 0.1)[0]) < count and time.monotonic() < deadline:
        pass
    time.sleep(0.3)  # one more look: more than ``count`` would be wrong too
    return select.select(socks, [], [], 0)[0]


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5.0)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_host_header_must_name_this_server(open_server: LiveServer) -> None:
    port = open_server.port
    for host in (f"127.0.0.1:{port}", "localhost", "LOCALHOST.:9000", "[::1]:8080", "10.1.2.3"):
        assert request(port, "/api/status", host)[0] == 200, host
    assert request(port, "/api/status", None)[0] == 200  # HTTP/1.0 without Host: not a browser
    code, _, body = request(port, "/api/status", f"rebind.attacker.example:{port}")
    assert code == 403
    error = json.loads(body)["error"]
    assert "rebind.attacker.example" in error and "--allow-host rebind.attacker.example" in error
    for path in ("/", "/static/app.js", "/metrics", "/stream.mjpg"):
        assert request(port, path, "rebind.attacker.example")[0] == 403, path
    assert request(port, "/healthz", "rebind.attacker.example")[0] == 200  # up/down only
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("GET", "/api/status", skip_host=True)
    connection.putheader("Host", "localhost")
    connection.putheader("Host", "rebind.attacker.example")
    connection.endheaders()
    assert connection.getresponse().status == 403  # two Host headers: refused
    connection.close()


def test_allow_host_names_and_a_wildcard_bind(card: dict) -> None:
    names = parse_allowed_hosts(["Line-7.Plant.Example.", "[fd00::7]"])
    with LiveServer(LiveState(card), allowed_hosts=names) as server:
        assert request(server.port, "/api/status", "line-7.plant.example:8080")[0] == 200
        assert request(server.port, "/api/status", "line-8.plant.example")[0] == 403
    with LiveServer(LiveState(card), "0.0.0.0", 0, token=TOKEN) as server:
        auth = {"Authorization": b"Bearer " + TOKEN.encode()}
        for host in ("192.168.7.20:8080", socket.gethostname(), "localhost"):
            assert request(server.port, "/api/status", host, headers=auth)[0] == 200, host
        assert request(server.port, "/api/status", "attacker.example", headers=auth)[0] == 403
    for bad in ("", "http://box", "box:8080", "box/page", "a b", "*"):
        with pytest.raises(ConfigError, match="--allow-host"):
            parse_allowed_hosts([bad])


def test_head_answers_like_get_without_a_body(token_server: LiveServer) -> None:
    port, auth = token_server.port, {"Authorization": b"Bearer " + TOKEN.encode()}
    for path in ("/", "/static/app.js", "/api/status", "/metrics"):
        code, headers, body = request(port, path, method="HEAD", headers=auth)
        got = request(port, path, headers=auth)
        assert (code, body) == (200, b""), path
        assert headers["Content-Type"] == got[1]["Content-Type"]
        if path != "/api/status":  # the status's uptime changes its length
            assert int(headers["Content-Length"]) == len(got[2]), path
    code, headers, body = request(port, "/stream.mjpg", method="HEAD", headers=auth)
    assert code == 200 and headers["Content-Type"].startswith("multipart/") and body == b""
    assert request(port, "/api/status", method="HEAD")[:3:2] == (401, b"")
    assert request(port, "/healthz", method="HEAD")[0] == 200
    assert request(port, "/api/status", method="POST", headers=auth)[0] == 501


def bearer(port: int, value: bytes | str) -> int:
    """The status of ``/api/status`` with ``Authorization: Bearer VALUE`` (bytes: sent as is)."""
    prefix = b"Bearer " if isinstance(value, bytes) else "bearer  "  # the scheme: any case
    return request(port, "/api/status", headers={"Authorization": prefix + value})[0]


def test_non_ascii_token_in_query_and_bearer_header(token_server: LiveServer) -> None:
    """Both carry the token as UTF-8 bytes: percent-encoded in the query, raw in the header."""
    port = token_server.port
    assert request(port, f"/api/status?token={quote(TOKEN)}")[0] == 200
    assert bearer(port, TOKEN.encode()) == 200
    assert bearer(port, quote(TOKEN)) == 401  # percent-encoding is the query's, not the header's
    wrong = TOKEN.replace("🔑", "🔒")
    assert request(port, f"/api/status?token={quote(wrong)}")[0] == 401
    assert bearer(port, wrong.encode()) == 401
    assert bearer(port, b"\xff\xfe") == 401 and bearer(port, TOKEN.encode("utf-16")) == 401


def test_page_opened_with_the_token_sets_a_strict_httponly_cookie(token_server: LiveServer) -> None:
    """The page's own loads (style, script, events, frames) carry no token: the cookie set when
    ``/?token=T`` was opened lets them in."""
    port = token_server.port
    code, headers, page = request(port, f"/?token={quote(TOKEN)}")
    assert code == 200 and b"static/app.js" in page
    cookie = headers["Set-Cookie"]
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    assert {a.lower() for a in attributes} == {"path=/", "httponly", "samesite=strict"}
    name, value = name_value.split("=", 1)
    assert name == f"glcf_{port}" and quote(TOKEN) not in value and TOKEN not in value
    for path in ("/", "/static/app.js", "/static/style.css", "/api/status", "/metrics"):
        assert request(port, path, headers={"Cookie": f"other=1; {name_value}"})[0] == 200, path
    forged = f"{name}={value[:-1]}{'0' if value[-1] != '0' else '1'}"
    assert request(port, "/static/app.js", headers={"Cookie": forged})[0] == 401
    assert request(port, "/static/app.js", headers={"Cookie": f"glcf_1={value}"})[0] == 401
    code, headers, _ = request(port, "/?token=wrong")
    assert code == 401 and headers["Set-Cookie"] is None
    assert request(port, f"/api/status?token={quote(TOKEN)}")[1]["Set-Cookie"] is None
