"""`glcf inspect`'s plant outputs: --publish (MQTT, webhook, OPC UA) through a durable outbox.
See docs/station.md."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from glcf_runtime.publish import Publisher, PublishOptions, PublishSink
    from glcf_runtime.sinks import Sink

Opt = typer.Option
PublishOpt = Annotated[
    list[str] | None,
    Opt("--publish", metavar="URI",
        help="Send every verdict to the line, at least once and in order (repeatable): "
        "mqtt://HOST:1883/TOPIC or mqtts:// (QoS 1), http(s)://HOST/PATH (a JSON POST per "
        "verdict), opc.tcp://HOST:4840 (with --opcua-node). Verdicts wait in a durable outbox "
        "while a destination is down. No password in the URI: use GLCF_MQTT_PASSWORD, "
        "GLCF_WEBHOOK_TOKEN, GLCF_OPCUA_PASSWORD or --publish-secret-file."),
]
RetainOpt = Annotated[
    bool, Opt("--mqtt-retain-last",
              help="MQTT: also publish each verdict, retained, on TOPIC/<camera>/last.")
]
OpcNodeOpt = Annotated[
    list[str] | None,
    Opt("--opcua-node", metavar="KEY=NODEID",
        help="OPC UA: write KEY (verdict, score, frame, error, message_id, camera) to the variable "
        "NODEID, e.g. 'verdict=ns=2;s=Station1.Reject' (repeatable)."),
]
OutboxOpt = Annotated[
    Path | None,
    Opt(help="With --publish: the outbox file (SQLite); default: JSONL.outbox.sqlite beside "
        "--jsonl. Undelivered verdicts of a killed run in it are delivered first."),
]
OutboxMaxOpt = Annotated[
    float, Opt(help="With --publish: the outbox's limit in MB; when it is reached the run stops "
               "with exit code 5 (nothing is dropped).")
]
DrainOpt = Annotated[
    float, Opt(help="With --publish: at the end, wait up to this many seconds for pending "
               "deliveries; what is left stays in the outbox for the next run.")
]
DeadlineOpt = Annotated[
    float | None,
    Opt(help="With --publish: a verdict sent more than this many ms after its frame was "
        "captured carries late: true; acknowledged after it, it counts as late."),
]
SecretFileOpt = Annotated[
    Path | None,
    Opt(help="With --publish: a file holding the broker password / webhook token / OPC UA "
        "password (instead of the environment variables)."),
]
PublishWaitOpt = Annotated[
    float, Opt(help="With --publish: longest wait in seconds between delivery attempts (the wait "
               "doubles from 0.25 s up to this).")
]

CaOpt = Annotated[
    Path | None,
    Opt("--publish-ca", metavar="FILE",
        help="mqtts:// and https://: trust only the CA certificates in FILE (PEM, one or more; "
        "e.g. the plant's own CA) instead of the system's. Hostnames are still checked. "
        "opc.tcp:// with --opcua-security: the trust list of the server's certificate."),
]
ClientCertOpt = Annotated[
    Path | None,
    Opt("--publish-client-cert", metavar="FILE",
        help="mqtts:// and https:// with mutual TLS: the station's certificate (PEM); with "
        "--publish-client-key. opc.tcp:// with --opcua-security: the station's application "
        "instance certificate (PEM or DER)."),
]
ClientKeyOpt = Annotated[
    Path | None,
    Opt("--publish-client-key", metavar="FILE",
        help="The private key of --publish-client-cert (PEM, unencrypted; readable by the "
        "station's user only)."),
]

OpcSecurityOpt = Annotated[
    str | None,
    Opt("--opcua-security", metavar="POLICY,MODE",
        help="opc.tcp://: sign (Sign) or sign and encrypt (SignAndEncrypt) with POLICY "
        "Basic256Sha256, Aes128Sha256RsaOaep or Aes256Sha256RsaPss, e.g. "
        "Basic256Sha256,SignAndEncrypt; needs --publish-client-cert/--publish-client-key (the "
        "station's application instance certificate, RSA, PEM or DER). The server's "
        "certificate must be in --publish-ca FILE or signed by a CA there (without "
        "--publish-ca it is not checked). Default: None (no security)."),
]


@dataclass(frozen=True)
class PublishPlan:
    """The checked publishing options and the publishers (not connected yet)."""

    options: PublishOptions
    publishers: list[Publisher]
    outbox: Path
    max_bytes: int


def plan(uris: list[str] | None, retain_last: bool, opcua_nodes: list[str] | None,
         jsonl: Path | None, outbox: Path | None, outbox_max_mb: float, drain_s: float,
         deadline_ms: float | None, secret_file: Path | None, max_wait_s: float,
         ca_file: Path | None = None, client_cert: Path | None = None,
         client_key: Path | None = None, opcua_security: str | None = None
         ) -> PublishPlan | None:
    """Check the publishing options before the model loads (ConfigError, exit 2); None when
    nothing is published."""
    from glcf_runtime.errors import ConfigError
    from glcf_runtime.outbox import outbox_path
    from glcf_runtime.publish import PublishOptions, make_publishers
    from glcf_runtime.publish.base import split
    from glcf_runtime.sinks import check_writable

    if not uris:
        given = [name for name, value in (("--mqtt-retain-last", retain_last),
                 ("--opcua-node", opcua_nodes), ("--outbox", outbox),
                 ("--deadline-ms", deadline_ms), ("--publish-secret-file", secret_file),
                 ("--publish-ca", ca_file), ("--publish-client-cert", client_cert),
                 ("--publish-client-key", client_key),
                 ("--opcua-security", opcua_security)) if value]
        if given:
            raise ConfigError(f"{given[0]} is an option of --publish: add --publish URI")
        return None
    for uri in uris:
        split(uri)  # a password on the command line is refused first
    if not 0 < outbox_max_mb < float("inf"):
        raise ConfigError(f"--outbox-max-mb {outbox_max_mb}: give megabytes > 0, e.g. 256")
    if not 0.25 <= max_wait_s < float("inf"):
        raise ConfigError(f"--publish-max-wait {max_wait_s}: give seconds >= 0.25, e.g. 10")
    path = outbox_path(jsonl, outbox)
    check_writable(path, "--outbox")
    options = PublishOptions(tuple(uris), retain_last, tuple(opcua_nodes or ()), secret_file,
                             deadline_ms, drain_s, max_wait_s, ca_file, client_cert, client_key,
                             dict(os.environ), opcua_security)
    return PublishPlan(options, make_publishers(options), path, int(outbox_max_mb * 1e6))


def open_publishing(stack: contextlib.ExitStack, found: PublishPlan, outputs: list[Sink]
                    ) -> PublishSink:
    """Start the publishers and put their sink first in ``outputs`` (so each verdict is in the
    outbox before any other output has it, and the sink closes before the JSONL it records
    events into)."""
    from glcf_runtime.publish import PublishSink
    from glcf_runtime.sinks import JsonlSink

    jsonl = next((s for s in outputs if isinstance(s, JsonlSink)), None)
    sink = PublishSink(found.publishers, found.outbox, found.options, found.max_bytes,
                       None if jsonl is None else jsonl.write_record)
    stack.callback(sink.close)
    outputs.insert(0, sink)
    return sink


def summary_row(publish: dict) -> str:
    """The run summary's line about publishing."""
    return (f"{publish['delivered']} delivered, {publish['pending']} pending in the outbox, "
            f"{publish['failures']} failed attempts, {publish['refused']} refused, "
            f"{publish['late']} late, {publish['outages']} outages")
