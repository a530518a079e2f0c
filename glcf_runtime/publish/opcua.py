"""OPC UA (asyncua): writes a message's verdict, score and frame to variable nodes of an existing
server; acknowledged when every write returns Good.

``opc.tcp://[user@]host:4840`` with ``--opcua-node KEY=NODEID`` per node. Each value is written
as the node's own data type (read once per connection). ``verdict`` is True (reject) for a
frame without a verdict (unreadable, unhealthy, no threshold): a part nobody judged is not
passed. The password comes from ``GLCF_OPCUA_PASSWORD`` or ``--publish-secret-file``.

``--opcua-security POLICY,MODE`` signs (and encrypts) the connection with the station's
application instance certificate (``--publish-client-cert`` / ``--publish-client-key``, RSA, PEM
or DER); the client announces the application URI that certificate holds. Each connection
first asks the server for its endpoints (allowed without security, as the standard says), takes
the one of POLICY,MODE and checks its certificate before anything is signed for it: it must be
in ``--publish-ca FILE`` or signed by a CA certificate there, and valid now. Without
``--publish-ca`` the certificate the endpoint presents is used unchecked (a warning says so).
"""

from __future__ import annotations

import datetime
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glcf_runtime.errors import ConfigError
from glcf_runtime.publish.base import (
    SEND_TIMEOUT_S,
    Publisher,
    PublishOptions,
    SendFailed,
    secret,
    split,
)
from glcf_runtime.publish.tls import check_readable
from glcf_runtime.requires import require

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger("glcf.publish")
POLICIES = ("Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss")
MODES = ("Sign", "SignAndEncrypt")


def _crypto() -> tuple[Any, Any, Any]:
    """cryptography's x509, serialization and RSA modules (the plant extra), imported only where
    OPC UA security is used: a runtime-only box imports this module without them."""
    who = "--opcua-security"
    return (require("cryptography.x509", "plant", who=who),
            require("cryptography.hazmat.primitives.serialization", "plant", who=who),
            require("cryptography.hazmat.primitives.asymmetric.rsa", "plant", who=who))


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


@dataclass(frozen=True)
class Security:
    """``--opcua-security`` with its files, checked: ``policy`` "None" uses none of them."""

    policy: str = "None"
    mode: str = "None"
    certificate: bytes = b""  # DER, the station's application instance certificate
    key: bytes = b""  # DER (PKCS#8), its private key
    application_uri: str = ""  # from the certificate's subjectAltName
    trusted: tuple[x509.Certificate, ...] = ()  # --publish-ca; () trusts what the server shows
    ca_file: Path | None = None


def parse_security(spec: str | None) -> tuple[str, str]:
    """``"Basic256Sha256,SignAndEncrypt"`` → ``("Basic256Sha256", "SignAndEncrypt")``; ``None``
    or ``"None"`` → ``("None", "None")``."""
    if spec is None or spec.strip() == "None":
        return "None", "None"
    policy, _sep, mode = (part.strip() for part in spec.partition(","))
    if policy not in POLICIES or mode not in MODES:
        raise ConfigError(f"--opcua-security {spec!r}: give POLICY,MODE with POLICY one of "
                          f"{', '.join(POLICIES)} and MODE one of {', '.join(MODES)}, e.g. "
                          "--opcua-security Basic256Sha256,SignAndEncrypt (or None: no security)")
    return policy, mode


def load_security(options: PublishOptions) -> Security:
    """The checked ``--opcua-security`` and its files; ConfigError naming the file and the fix."""
    policy, mode = parse_security(options.opcua_security)
    if policy == "None":
        return Security()
    x509, serialization, rsa = _crypto()
    cert_path, key_path = options.client_cert, options.client_key
    if cert_path is None or key_path is None:
        raise ConfigError(f"--opcua-security {policy},{mode} needs the station's application "
                          "instance certificate: give --publish-client-cert FILE and "
                          "--publish-client-key FILE (RSA, PEM or DER; the certificate's "
                          "subjectAltName holds the application URI, e.g. URI:urn:plant:station1)")
    cert = _load_certificates("--publish-client-cert", cert_path,
                              "the station's application instance certificate")[0]
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise ConfigError(f"--publish-client-cert {cert_path}: OPC UA security policies need an "
                          "RSA certificate (2048 bits or more); this one is not RSA")
    key = _load_key(key_path)
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise ConfigError(f"--publish-client-cert {cert_path} / --publish-client-key {key_path}: "
                          "the key is not the certificate's; give the certificate's own key")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if not uris:
        raise ConfigError(f"--publish-client-cert {cert_path}: holds no application URI (a "
                          "subjectAltName URI:urn:…); OPC UA servers refuse such a certificate: "
                          "make one with the station's application URI in it")
    trusted = () if options.ca_file is None else tuple(_load_certificates(
        "--publish-ca", options.ca_file, "the OPC UA server's certificate or its CA"))
    return Security(policy, mode, cert.public_bytes(serialization.Encoding.DER),
                    key.private_bytes(serialization.Encoding.DER,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
                    uris[0], trusted, options.ca_file)


def _load_certificates(option: str, path: Path, what: str) -> list[x509.Certificate]:
    x509 = _crypto()[0]
    check_readable(option, path, what, "PEM or DER")
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError(f"{option} {path}: holds no certificate ({exc}); give {what} as "
                          "PEM or DER") from None


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    serialization, rsa = _crypto()[1:]
    check_readable("--publish-client-key", path, "the station's private key", "PEM or DER")
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, None)
        else:
            key = serialization.load_der_private_key(data, None)
    except TypeError as exc:  # encrypted
        raise ConfigError(f"--publish-client-key {path}: the key is encrypted ({exc}); give it "
                          "unencrypted (openssl pkey -in KEY -out PLAIN.key), readable by the "
                          "station's user only") from None
    except ValueError as exc:
        raise ConfigError(f"--publish-client-key {path}: holds no private key ({exc}); give the "
                          "station's RSA private key, PEM or DER") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"--publish-client-key {path}: OPC UA security policies need an RSA "
                          "key; this one is not RSA")
    return key


def check_server_certificate(der: bytes, security: Security, now: datetime.datetime
                             ) -> str | None:
    """Why the server's certificate (DER, as its endpoint presents it) is not trusted, with
    the fix; None when it is in ``--publish-ca`` or signed by a CA certificate there (with the
    intermediates the server sends), and valid at ``now``."""
    x509 = _crypto()[0]
    v = require("cryptography.x509.verification", "plant", who="--opcua-security")
    chain = _der_chain(der)
    if not chain:
        return "the server presents no certificate for this endpoint"
    cert = chain[0]
    name = cert.subject.rfc4514_string() or "no subject"
    if cert.not_valid_after_utc < now or cert.not_valid_before_utc > now:
        since, until = (f"{t:%Y-%m-%d %H:%M} UTC" for t in (cert.not_valid_before_utc,
                                                             cert.not_valid_after_utc))
        return (f"the server's certificate ({name}) is valid only from {since} to {until}: "
                "renew it on the server (or set the station's clock)")
    builder = v.PolicyBuilder().store(v.Store(list(security.trusted))).time(now).extension_policies(
        ca_policy=v.ExtensionPolicy.permit_all().require_present(
            x509.BasicConstraints, v.Criticality.AGNOSTIC, _is_ca),
        ee_policy=v.ExtensionPolicy.permit_all())
    try:
        builder.build_client_verifier().verify(cert, chain[1:])
    except v.VerificationError as exc:
        why = ("no certificate there signed it" if "candidates exhausted" in str(exc)
               else str(exc))
        return (f"the server's certificate ({name}, issued by {cert.issuer.rfc4514_string()}) "
                f"is not trusted: {why}; --publish-ca {security.ca_file} holds neither it nor "
                "the CA that signed it: give the CA of the plant's OPC UA servers, or the "
                "server's own certificate, with --publish-ca")
    return None


def _is_ca(_policy: object, _cert: x509.Certificate, ext: x509.BasicConstraints | None) -> None:
    if ext is None or not ext.ca:
        raise ValueError("a certificate that is no CA cannot sign another")


def _der_chain(der: bytes) -> list[x509.Certificate]:
    """The certificates of a DER blob (OPC UA sends a chain as concatenated DER)."""
    x509 = _crypto()[0]
    chain, offset = [], 0
    while offset + 4 <= len(der) and der[offset] == 0x30:
        size = der[offset + 1]
        head = 2
        if size & 0x80:
            head, size = 2 + (size & 0x7F), int.from_bytes(der[offset + 2:offset + 2 + (size & 0x7F)],
                                                           "big")
        chain.append(x509.load_der_x509_certificate(der[offset:offset + head + size]))
        offset += head + size
    return chain


class OpcUaPublisher(Publisher):
    def __init__(self, uri: str, options: PublishOptions) -> None:
        super().__init__(uri)
        self.nodes = parse_nodes(options.opcua_nodes)
        if not self.nodes:
            raise ConfigError(f"--publish {self.name}: name the nodes to write, e.g. --opcua-node "
                              "'verdict=ns=2;s=Station1.Reject' --opcua-node 'score=ns=2;s=Station1.Score'")
        self.security = load_security(options)
        self.sync = require("asyncua.sync", "plant", who="--publish opc.tcp://")
        self.ua = require("asyncua.ua", "plant", who="--publish opc.tcp://")
        self.policies = require("asyncua.crypto.security_policies", "plant",
                                who="--publish opc.tcp://")
        parts = split(uri)
        self.user = parts.username
        self.password = secret("opc.tcp", options) if self.user else None
        self.url = f"opc.tcp://{parts.hostname}:{parts.port or 4840}{parts.path}"
        self._client: Any = None
        self._targets: list[tuple[str, Any, Any]] = []  # (key, node, variant type)
        if self.security.policy != "None" and not self.security.trusted:
            log.warning("%s: the server's certificate is not checked (no --publish-ca): the "
                        "connection is encrypted but could be to an impostor; give --publish-ca "
                        "FILE (the CA of the plant's OPC UA servers or the server's certificate)",
                        self.name)

    def _connect(self) -> None:
        client = self.sync.Client(self.url, timeout=SEND_TIMEOUT_S, sync_wrapper_timeout=30)
        if self.user:
            client.set_user(self.user)
            client.set_password(self.password or "")
        try:
            server_cert = self._endpoint(client)
            if self.security.policy != "None":
                sec = self.security
                client.application_uri = sec.application_uri  # as the certificate says
                client.set_security(getattr(self.policies, f"SecurityPolicy{sec.policy}"),
                                    sec.certificate, sec.key, server_certificate=server_cert,
                                    mode=self.ua.MessageSecurityMode[sec.mode])
            client.connect()
            targets = []
            for key, nodeid in self.nodes.items():
                node = client.get_node(nodeid)
                targets.append((key, node, node.read_data_type_as_variant_type()))
        except SendFailed:
            self._drop(client)
            raise
        except Exception as exc:  # asyncua raises OSError, TimeoutError and its own UaError types
            self._drop(client)
            raise SendFailed(f"{self.url}: {type(exc).__name__} {exc}") from None
        self._client, self._targets = client, targets

    def _endpoint(self, client: Any) -> bytes:
        """The server's certificate of the endpoint of ``--opcua-security`` (asked for without
        security, as discovery is), checked; SendFailed naming what the server offers or why
        its certificate is not trusted."""
        sec, ua = self.security, self.ua
        uri = getattr(self.policies, f"SecurityPolicy{sec.policy}").URI
        mode = ua.MessageSecurityMode["None_" if sec.mode == "None" else sec.mode]
        endpoints = client.connect_and_get_server_endpoints()
        found = [e for e in endpoints if e.SecurityPolicyUri == uri and e.SecurityMode == mode]
        if not found:
            names = {getattr(self.policies, f"SecurityPolicy{p}").URI: p
                     for p in ("None", *POLICIES)}
            offers = sorted({names.get(e.SecurityPolicyUri, e.SecurityPolicyUri) + (
                "" if e.SecurityMode == ua.MessageSecurityMode.None_ else f",{e.SecurityMode.name}")
                for e in endpoints})
            fix = ("give --opcua-security with one of them, --publish-client-cert and "
                   "--publish-client-key" if sec.policy == "None" else
                   "give --opcua-security with one of them")
            raise SendFailed(f"{self.url}: the server offers no endpoint with security "
                             f"{sec.policy}{'' if sec.policy == 'None' else ',' + sec.mode} "
                             f"(it offers {'; '.join(offers) or 'none'}): {fix}")
        if sec.policy == "None":
            return b""
        presented = found[0].ServerCertificate or b""
        if sec.trusted:
            problem = check_server_certificate(presented, sec,
                                               datetime.datetime.now(datetime.timezone.utc))
            if problem is not None:
                raise SendFailed(f"{self.url}: {problem}")
        chain = _der_chain(presented)
        if not chain:
            raise SendFailed(f"{self.url}: the server presents no certificate for this endpoint")
        return chain[0].public_bytes(_crypto()[1].Encoding.DER)

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
