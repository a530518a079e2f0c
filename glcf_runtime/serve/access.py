"""Who may read the live page: the token, the page's cookie, and the ``Host`` header.

- **Token.** ``?token=T``, ``Authorization: Bearer T`` or the page's cookie. Tokens are compared
  as UTF-8 bytes in constant time (``hmac.compare_digest``), whichever way they came: the query
  string percent-encodes UTF-8, and a header arrives as raw bytes (``http.server`` reads header
  bytes as Latin-1, so encoding back to Latin-1 gives them unchanged).
- **Cookie.** Opening ``/?token=T`` sets ``glcf_PORT=V; HttpOnly; SameSite=Strict``, where
  ``V = HMAC-SHA256(T, label)``: the page's style sheet, script, event stream and images are
  loaded without the token in their URLs, and the cookie is not the token (HttpOnly: the page's
  scripts cannot read it; Strict: no other site's page can send it). The name carries the port,
  because browsers share cookies between the ports of one host.
- **Host.** A browser sends the name it resolved. A page served on localhost without a token is
  otherwise open to DNS rebinding: another site's name re-pointed at 127.0.0.1. Accepted: IP
  addresses (a rebinding needs a name), ``localhost`` when the server listens on loopback, this
  machine's host name when it listens beyond loopback, the bind name itself, and ``--allow-host``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import socket
from collections.abc import Iterable
from email.message import Message

from glcf_runtime.errors import ConfigError

COOKIE_LABEL = b"glcf live page cookie, v1"  # what the cookie's HMAC signs with the token
HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: treated as reachable from the network


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to bind a non-loopback address without a token.

    Raises:
        ConfigError: ``host`` is reachable from other machines and ``token`` is empty.
    """
    if not token and not is_loopback(host):
        raise ConfigError(
            f"--serve {host}: the page would be open to anyone who can reach this machine; give "
            "--token T (or set GLCF_TOKEN), or bind 127.0.0.1 and open it through an SSH tunnel "
            "(ssh -L 8080:127.0.0.1:8080 HOST)"
        )


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _normal(name: str) -> str:
    """Lower case, no brackets around an IPv6 address, no final dot."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def parse_allowed_hosts(values: Iterable[str]) -> tuple[str, ...]:
    """``--allow-host`` values: host names or IP addresses, as a browser's address bar shows them.

    Raises:
        ConfigError: a value with a scheme, port, path, space or wildcard.
    """
    names = []
    for value in values:
        name = _normal(value)
        if _ip(name) is None and not HOST_NAME.match(name):
            raise ConfigError(
                f"--allow-host {value!r}: give a host name or IP address without scheme, port or "
                "path, as the browser's address bar shows it, e.g. --allow-host "
                "inspection-box-7.plant.example (repeat the option for more names)"
            )
        names.append(name)
    return tuple(names)


def host_name(header: str) -> str:
    """The name in a ``Host`` header: ``"Box:8080"`` → ``"box"``, ``"[::1]:80"`` → ``"::1"``."""
    header = header.strip()
    if header.startswith("["):
        return _normal(header.partition("]")[0] + "]")
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return _normal(header)


class Access:
    """The token, cookie and ``Host`` checks of one server.

    Args:
        token: required on every route but ``/healthz``; None or empty: no token.
        bind: the address the server listens on (``127.0.0.1``, ``0.0.0.0``, a name).
        port: the port it listens on (names the cookie).
        allowed_hosts: ``parse_allowed_hosts`` names, accepted in the ``Host`` header.
    """

    def __init__(
        self, token: str | None, bind: str, port: int, allowed_hosts: Iterable[str] = ()
    ) -> None:
        # argv holds undecodable bytes as surrogates: encoding them back gives the bytes typed
        self.token = token.encode("utf-8", "surrogateescape") if token else None
        self.cookie_name = f"glcf_{port}"
        self.cookie_value = (
            None if self.token is None
            else hmac.new(self.token, COOKIE_LABEL, hashlib.sha256).hexdigest().encode()
        )
        bind = _normal(bind)
        address = _ip(bind)
        wildcard = address is not None and address.is_unspecified
        self.hosts = set(parse_allowed_hosts(allowed_hosts)) | {bind}
        if wildcard or is_loopback(bind):
            self.hosts.add("localhost")
        if wildcard or not is_loopback(bind):
            full = _normal(socket.gethostname())
            self.hosts |= {full, full.partition(".")[0]}

    def host_allowed(self, headers: Message) -> bool:
        """One ``Host`` header that names this server, or none (HTTP/1.0: not a browser)."""
        given = headers.get_all("Host") or []
        if len(given) > 1:
            return False
        name = host_name(given[0]) if given else None
        return name is None or _ip(name) is not None or name in self.hosts

    def host_refusal(self, headers: Message, url: str) -> str:
        """The 403 message for a ``Host`` that ``host_allowed`` refused."""
        names = [host_name(h) for h in headers.get_all("Host") or []]
        shown = names[0] if len(names) == 1 else " and ".join(names)
        return (
            f"Host {shown!r} is not a name of this server, so the request is refused (a "
            f"DNS-rebinding guard); open the page by its address, e.g. {url}, or start glcf "
            f"inspect with --allow-host {shown}"
        )

    def authorized(self, headers: Message, query_tokens: list[str]) -> bool:
        """``?token=T``, ``Authorization: Bearer T`` or the page's cookie matches (always true
        without a token). Every candidate is compared, each in constant time."""
        if self.token is None or self.cookie_value is None:
            return True
        given = [t.encode("utf-8", "surrogateescape") for t in query_tokens]
        scheme, _, value = (headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() == "bearer":
            given.append(value.strip().encode("latin-1", "replace"))
        match = False
        for candidate in given:
            match |= hmac.compare_digest(candidate, self.token)
        for cookie in self._cookies(headers):
            match |= hmac.compare_digest(cookie, self.cookie_value)
        return match

    def _cookies(self, headers: Message) -> list[bytes]:
        found = []
        for header in headers.get_all("Cookie") or []:
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name == self.cookie_name:
                    found.append(value.strip().encode("latin-1", "replace"))
        return found

    def page_cookie(self, query_tokens: list[str]) -> str | None:
        """``Set-Cookie`` for the page when it was opened with the right ``?token=T``, else None."""
        if self.token is None or self.cookie_value is None:
            return None
        match = False
        for candidate in query_tokens:
            match |= hmac.compare_digest(candidate.encode("utf-8", "surrogateescape"), self.token)
        if not match:
            return None
        return f"{self.cookie_name}={self.cookie_value.decode()}; Path=/; HttpOnly; SameSite=Strict"
