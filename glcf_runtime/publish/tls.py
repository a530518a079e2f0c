"""TLS of ``mqtts://`` and ``https://`` outputs: whom they trust (the system's CA certificates,
or only those of ``--publish-ca FILE``), the client certificate of mutual TLS
(``--publish-client-cert`` / ``--publish-client-key``), and a failed handshake told in words
that name the certificate problem and the fix. Hostnames are always checked. The same options
serve ``opc.tcp://`` with ``--opcua-security`` (see ``opcua``)."""

from __future__ import annotations

import ssl
from pathlib import Path

from glcf_runtime.errors import ConfigError
from glcf_runtime.publish.base import PublishOptions

TLS_SCHEMES = ("mqtts", "https")


def check_tls(options: PublishOptions, schemes: list[str]) -> None:
    """ConfigError for a TLS / certificate option that cannot work: a key without its
    certificate (or the reverse), no output to use it (``mqtts://``,
    ``https://``, or ``opc.tcp://`` with ``--opcua-security``), or ``--opcua-security`` without
    an ``opc.tcp://`` output. The files themselves are checked where they are loaded, as the
    publishers are made: :func:`tls_context` (PEM) and the OPC UA publisher (PEM or DER)."""
    if options.opcua_security is not None and "opc.tcp" not in schemes:
        raise ConfigError("--opcua-security is for OPC UA: add --publish opc.tcp://HOST:4840")
    given = [name for name, value in (("--publish-ca", options.ca_file),
                                      ("--publish-client-cert", options.client_cert),
                                      ("--publish-client-key", options.client_key)) if value]
    if not given:
        return
    tls = bool(set(TLS_SCHEMES) & set(schemes))
    opcua = options.opcua_security not in (None, "None")  # the publisher parses it
    if not tls and not opcua:
        raise ConfigError(f"{given[0]} is for the TLS outputs: give --publish mqtts://HOST:8883/"
                          "TOPIC or https://HOST/PATH (mqtt://, http:// and opc.tcp:// use no TLS), "
                          "or for opc.tcp:// --opcua-security POLICY,MODE")
    if (options.client_cert is None) != (options.client_key is None):
        if tls:
            raise ConfigError("mutual TLS needs both --publish-client-cert FILE (the station's "
                              "certificate, PEM) and --publish-client-key FILE (its private key, "
                              "PEM)")
        raise ConfigError("--opcua-security needs both --publish-client-cert FILE (the station's "
                          "application instance certificate) and --publish-client-key FILE (its "
                          "private key)")


def check_readable(option: str, path: Path, what: str, form: str = "PEM") -> None:
    """ConfigError naming ``option`` and ``path`` unless it is a readable file."""
    if not path.exists():
        raise ConfigError(f"{option} {path}: no such file; give the {form} file of {what}")
    if not path.is_file():
        raise ConfigError(f"{option} {path}: not a file; give the {form} file of {what}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot read it ({exc.strerror or exc}); make it "
                          "readable by the station's user") from None


def tls_context(options: PublishOptions) -> ssl.SSLContext:
    """The context of every TLS output: verifies the peer's certificate chain and hostname
    against ``--publish-ca`` only when given (else the system's CA certificates) and presents
    the client certificate when given. ConfigError for a file that cannot be used."""
    ca = options.ca_file
    if ca is not None:
        check_readable("--publish-ca", ca, "the CA certificate(s) that signed the broker's / "
                       "server's certificate")
    try:
        context = ssl.create_default_context(cafile=None if ca is None else str(ca))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"--publish-ca {ca}: holds no PEM certificate ({exc.reason or exc}); give the CA "
            "certificate(s) as PEM (-----BEGIN CERTIFICATE-----; from DER: openssl x509 -inform "
            "der -in CA.der -out CA.pem)") from None
    if options.client_cert is not None and options.client_key is not None:
        _load_client(context, options.client_cert, options.client_key)
    return context


def _load_client(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    check_readable("--publish-client-cert", cert, "the station's certificate")
    check_readable("--publish-client-key", key, "the station's private key")
    asked = []

    def no_password() -> bytes:  # never OpenSSL's prompt on the terminal
        asked.append(True)
        return b""

    try:
        context.load_cert_chain(str(cert), str(key), password=no_password)
    except ssl.SSLError as exc:
        why = exc.reason or exc
        if asked:
            raise ConfigError(f"--publish-client-key {key}: the key is encrypted ({why}); give "
                              "it unencrypted (openssl pkey -in KEY -out PLAIN.key), readable by "
                              "the station's user only") from None
        if exc.reason == "KEY_VALUES_MISMATCH":
            why = f"{why}: the key is not the certificate's"
        raise ConfigError(f"--publish-client-cert {cert} / --publish-client-key {key}: cannot "
                          f"use them ({why}); give the station's certificate and its own "
                          "private key, both PEM") from None


def tls_failure(exc: ssl.SSLError, peer: str, options: PublishOptions) -> str:
    """What went wrong in the TLS handshake with ``peer`` ("the broker" / "the server"), and
    the fix."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        problem = f"certificate verify failed: {exc.verify_message}"
        if "mismatch" in str(exc.verify_message):
            fix = f"connect to {peer} by a name or address its certificate holds"
        elif options.ca_file is None:
            fix = f"give {peer}'s CA with --publish-ca FILE"
        else:
            fix = f"--publish-ca {options.ca_file} is not the CA that signed {peer}'s certificate"
        return f"TLS handshake failed: {problem}; {fix}"
    reason = str(exc.reason or exc).lower().replace("_", " ")  # TLSV13_ALERT_CERTIFICATE_REQUIRED
    if options.client_cert is None and ("certificate required" in reason
                                        or "handshake failure" in reason):
        return (f"TLS handshake failed: {reason}; {peer} may want a client certificate: give "
                "--publish-client-cert FILE and --publish-client-key FILE")
    if isinstance(exc, ssl.SSLEOFError) and options.client_cert is None:
        return (f"TLS error: {peer} closed the connection ({exc}); if it wants a client "
                "certificate, give --publish-client-cert FILE and --publish-client-key FILE")
    if "unknown ca" in reason or "bad certificate" in reason:
        return (f"TLS handshake failed: {reason}; {peer} does not trust the station's "
                "certificate (--publish-client-cert)")
    return f"TLS error: {exc}"
