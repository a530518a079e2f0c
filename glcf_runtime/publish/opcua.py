"""OPC UA (asyncua): writes a message's verdict, score and frame to variable nodes of an existing
server; acknowledged when every write returns Good.

``opc.tcp://[user@]host:4840`` with ``--opcua-node KEY=NODEID`` per node. Each value is written
as the node's own data type (read once per connection). ``verdict`` is True (reject) for a
frame without a verdict (unreadable, unhealthy, no threshold): a part nobody judged is not
passed. The password comes from ``GLCF_OPCUA_PASSWORD`` or ``--publish-secret-file``.
"""

from __future__ import annotations

import math
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
from glcf_runtime.requires import require


def _verdict(message: dict) -> bool:
    return message.get("anomalous") is not False


def _score(message: dict) -> float:
    score = message.get("score")
    return math.nan if score is None else float(score)


# KEY of --opcua-node → the value written, from the message
VALUES = {
    "verdict": _verdict,
    "score": _score,
    "frame": lambda m: int(m["frame"]),
    "error": lambda m: "error" in m,
    "message_id": lambda m: str(m["message_id"]),
    "camera": lambda m: str(m["camera"]),
}


def parse_nodes(specs: tuple[str, ...]) -> dict[str, str]:
    """``("verdict=ns=2;s=Station1.Reject", …)`` → ``{"verdict": "ns=2;s=Station1.Reject"}``."""
    nodes: dict[str, str] = {}
    for spec in specs:
        key, sep, node = spec.partition("=")
        if not sep or key not in VALUES or not node:
            raise ConfigError(f"--opcua-node {spec!r}: give KEY=NODEID with KEY one of "
                              f"{', '.join(VALUES)}, e.g. --opcua-node 'verdict=ns=2;s=Station1.Reject'")
        if key in nodes:
            raise ConfigError(f"--opcua-node {key}= is given twice; give each key once")
        nodes[key] = node
    return nodes


class OpcUaPublisher(Publisher):
    def __init__(self, uri: str, options: PublishOptions) -> None:
        super().__init__(uri)
        self.nodes = parse_nodes(options.opcua_nodes)
        if not self.nodes:
            raise ConfigError(f"--publish {self.name}: name the nodes to write, e.g. --opcua-node "
                              "'verdict=ns=2;s=Station1.Reject' --opcua-node 'score=ns=2;s=Station1.Score'")
        self.sync = require("asyncua.sync", "plant", who="--publish opc.tcp://")
        self.ua = require("asyncua.ua", "plant", who="--publish opc.tcp://")
        parts = split(uri)
        self.user = parts.username
        self.password = secret("opc.tcp", options) if self.user else None
        self.url = f"opc.tcp://{parts.hostname}:{parts.port or 4840}{parts.path}"
        self._client: Any = None
        self._targets: list[tuple[str, Any, Any]] = []  # (key, node, variant type)

    def _connect(self) -> None:
        client = self.sync.Client(self.url, timeout=SEND_TIMEOUT_S, sync_wrapper_timeout=30)
        if self.user:
            client.set_user(self.user)
            client.set_password(self.password or "")
        try:
            client.connect()
            targets = []
            for key, nodeid in self.nodes.items():
                node = client.get_node(nodeid)
                targets.append((key, node, node.read_data_type_as_variant_type()))
        except Exception as exc:  # asyncua raises OSError, TimeoutError and its own UaError types
            self._drop(client)
            raise SendFailed(f"{self.url}: {type(exc).__name__} {exc}") from None
        self._client, self._targets = client, targets

    def send(self, message: dict) -> None:
        if self._client is None:
            self._connect()
        ua = self.ua
        values = [ua.Variant(_cast(VALUES[key](message), vtype, ua), vtype)
                  for key, _node, vtype in self._targets]
        try:
            codes = self._client.write_values([t[1] for t in self._targets], values,
                                              raise_on_partial_error=False)
        except Exception as exc:  # the connection went, or a timeout
            self.close()
            raise SendFailed(f"{self.url}: {type(exc).__name__} {exc}") from None
        bad = [f"{key}: {code.name}" for (key, _n, _t), code in zip(self._targets, codes, strict=True)
               if not code.is_good()]
        if bad:
            raise SendFailed(f"{self.url}: the server refused the write ({', '.join(bad)})")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self._drop(client)

    @staticmethod
    def _drop(client: Any) -> None:
        try:
            client.disconnect()  # also stops the client's event-loop thread
        except Exception:  # already gone: nothing to close
            return


def _cast(value: Any, vtype: Any, ua: Any) -> Any:
    """``value`` as Python wants it for ``vtype`` (an int node gets an int, a float a float)."""
    kind = vtype.name
    if kind == "Boolean":
        return bool(value)
    if kind in ("Float", "Double"):
        return float(value)
    if "Int" in kind or kind == "Byte":
        return int(value) if not isinstance(value, float) or math.isfinite(value) else 0
    if kind == "String":
        return str(value)
    return value
