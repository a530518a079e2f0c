"""A throwaway certificate authority for the TLS publishing tests (``cryptography``): a CA, a
server certificate (127.0.0.1 and localhost unless told) and a client certificate, as PEM; and
one of RSA OPC UA application instance certificates."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    """PEM files: ``ca`` (the CA's certificate), ``server_cert`` / ``server_key`` (127.0.0.1,
    localhost), ``client_cert`` / ``client_key`` (for mutual TLS)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, issuer: str,
                 issuer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, extensions: list
                 ) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _ca_certificate(name: str, key):
    """A self-signed CA certificate named ``name`` for ``key``."""
    return _certificate(name, key, name, key, [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                       key_agreement=False, encipher_only=False, decipher_only=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ])


def make_pki(folder: Path, name: str = "Plant Test CA",
             server_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Pki:
    """A new CA named ``name`` in ``folder`` and the certificates it signed; the server's holds
    ``server_names`` (host names or IP addresses)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(name, ca_key)
    issued = {}
    for role, usage, names in (
            ("server", ExtendedKeyUsageOID.SERVER_AUTH, [_san(h) for h in server_names]),
            ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("station1")])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"{role}.plant.test", key, name, ca_key, [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName(names), False),
            (x509.ExtendedKeyUsage([usage]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
        ])
        issued[role] = (_write_cert(cert, folder / f"{role}.pem"),
                        _write_key(key, folder / f"{role}.key"))
    return Pki(_write_cert(ca, folder / "ca.pem"), *issued["server"], *issued["client"])


@dataclass(frozen=True)
class OpcUaPki:
    """OPC UA application instance certificates (RSA 2048, the application URI in the
    subjectAltName) signed by one CA: ``ca`` (PEM), ``server_cert`` / ``server_key`` (PEM),
    ``client_cert`` / ``client_key`` (DER, as OPC UA tools write them)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    server_uri: str
    client_uri: str


def _opcua_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                         data_encipherment=True, key_agreement=False, key_cert_sign=False,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def make_opcua_pki(folder: Path, name: str = "Plant OPC UA CA",
                   server_uri: str = "urn:plant:test:plc",
                   client_uri: str = "urn:plant:test:station1") -> OpcUaPki:
    """A new RSA CA named ``name`` in ``folder`` and the OPC UA certificates it signed."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = rsa.generate_private_key(65537, 2048)
    ca = _ca_certificate(name, ca_key)
    files = []
    for role, usage, uri, der in (("server", ExtendedKeyUsageOID.SERVER_AUTH, server_uri, False),
                                  ("client", ExtendedKeyUsageOID.CLIENT_AUTH, client_uri, True)):
        key = rsa.generate_private_key(65537, 2048)
        cert = _certificate(f"opcua-{role}.plant.test", key, name, ca_key, [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri),
                                          x509.DNSName("localhost"),
                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
             False),
            (_opcua_usage(), True),
            (x509.ExtendedKeyUsage([usage]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
        ])
        encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
        suffix = "der" if der else "pem"
        cert_path = folder / f"opcua-{role}.{suffix}"
        cert_path.write_bytes(cert.public_bytes(encoding))
        key_path = folder / f"opcua-{role}-key.{suffix}"
        key_path.write_bytes(key.private_bytes(encoding, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        files += [cert_path, key_path]
    return OpcUaPki(_write_cert(ca, folder / "opcua-ca.pem"), *files, server_uri, client_uri)
