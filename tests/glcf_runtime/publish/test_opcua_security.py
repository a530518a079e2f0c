"""OPC UA with --opcua-security against asyncua's own server offering only
Basic256Sha256,SignAndEncrypt, its certificate and the station's made by a plant CA at test
time (the server checks that the station announces its certificate's application URI). The
secured station writes the nodes; a station without security, or one whose --publish-ca did
not sign the server's certificate, is refused: an outage record naming the problem and the
fix, the verdicts kept in the outbox. Options that cannot work are refused before the model
loads (exit 2)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from glcf_bench.fixtures.contract_model import write_images
from glcf_runtime.loop import inspect
from glcf_runtime.publish import PublishOptions, PublishSink, make_publishers
from glcf_runtime.publish.opcua import Security, check_server_certificate
from glcf_runtime.sinks import JsonlSink
from glcf_runtime.sources import open_source
from tests.glcf_runtime.publish.pki import OpcUaPki, make_opcua_pki, make_pki
from tests.glcf_runtime.publish.plant import (
    assert_refused_before_the_model_loads,
    free_port,
    records,
)

SECURE = "Basic256Sha256,SignAndEncrypt"


class SecureServer:
    """asyncua's server with only ``security`` (POLICY,MODE), ``pki``'s server certificate
    and writable Station1.{Reject, Score} in ns=2; a client must announce the application URI
    of its certificate."""

    def __init__(self, pki: OpcUaPki, security: str = SECURE) -> None:
        from asyncua import ua
        from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
        from asyncua.sync import Server

        self.url = f"opc.tcp://127.0.0.1:{free_port()}"
        self.server = Server()
        self.server.set_endpoint(self.url + "/")
        self.server.set_security_policy([ua.SecurityPolicyType[security.replace(",", "_")]])
        self.server.load_certificate(str(pki.server_cert))
        self.server.load_private_key(str(pki.server_key))
        self.server.set_application_uri(pki.server_uri)
        self.server.aio_obj.set_certificate_validator(CertificateValidator(
            CertificateValidatorOptions.BASIC_VALIDATION | CertificateValidatorOptions.PEER_CLIENT))
        idx = self.server.register_namespace("urn:glcf:test")
        station = self.server.nodes.objects.add_object(idx, "Station1")
        self.vars = {}
        for name, value, kind in (("Reject", False, ua.VariantType.Boolean),
                                  ("Score", 0.0, ua.VariantType.Double)):
            var = station.add_variable(ua.NodeId(f"Station1.{name}", idx), name,
                                       ua.Variant(value, kind))
            var.set_writable()
            self.vars[name] = var
        self.nodes = (f"verdict=ns={idx};s=Station1.Reject", f"score=ns={idx};s=Station1.Score")
        self.server.start()

    def read(self, name: str) -> object:
        return self.vars[name].read_value()

    def close(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OpcUaPki:
    return make_opcua_pki(tmp_path_factory.mktemp("opcua-pki"))


def _run(runner, tmp_path: Path, server: SecureServer, frames: list[bool], **options: object
         ) -> tuple[dict, Path]:
    """One run publishing to ``server``; the summary's publish and the JSONL."""
    folder = write_images(tmp_path / "cam", frames)[0].parent
    opts = PublishOptions((server.url,), opcua_nodes=server.nodes, **options)
    jsonl = JsonlSink(tmp_path / "run.jsonl")
    sink = PublishSink(make_publishers(opts), tmp_path / "o.sqlite", opts,
                       event=jsonl.write_record)
    with open_source(str(folder)) as source:
        summary = inspect(runner, source, sinks=[sink, jsonl])
    return summary.publish, tmp_path / "run.jsonl"


def _outage(jsonl: Path) -> str:
    return next(r for r in records(jsonl) if r.get("event") == "publish_outage")["error"]


@pytest.mark.parametrize("trust", [True, False])
def test_secured_station_writes_the_nodes(runner, pki: OpcUaPki, tmp_path: Path, trust: bool,
                                          caplog: pytest.LogCaptureFixture) -> None:
    server = SecureServer(pki)
    try:
        publish, jsonl = _run(runner, tmp_path, server, [False, True], opcua_security=SECURE,
                              client_cert=pki.client_cert, client_key=pki.client_key,
                              ca_file=pki.ca if trust else None)
        values = server.read("Reject"), server.read("Score")
    finally:
        server.close()
    assert (publish["delivered"], publish["pending"], publish["failures"]) == (2, 0, 0)
    last = records(jsonl)[-1]
    assert values == (True, pytest.approx(last["score"]))
    unchecked = "the server's certificate is not checked (no --publish-ca)"
    assert (unchecked in caplog.text) is not trust, caplog.text


@pytest.mark.parametrize("security", ["Basic256Sha256,Sign", "Aes128Sha256RsaOaep,SignAndEncrypt",
                                      "Aes256Sha256RsaPss,Sign"])
def test_every_policy_and_mode(runner, pki: OpcUaPki, tmp_path: Path, security: str) -> None:
    server = SecureServer(pki, security)
    try:
        publish, _jsonl = _run(runner, tmp_path, server, [True], opcua_security=security,
                               client_cert=pki.client_cert, client_key=pki.client_key,
                               ca_file=pki.ca)
        values = server.read("Reject")
    finally:
        server.close()
    assert (publish["delivered"], publish["failures"]) == (1, 0) and values is True


def test_station_without_security_is_an_outage_naming_the_offered_policy(
        runner, pki: OpcUaPki, tmp_path: Path) -> None:
    server = SecureServer(pki)
    try:
        publish, jsonl = _run(runner, tmp_path, server, [False, False, True], drain_s=0.5,
                              max_wait_s=0.25)
        values = server.read("Reject"), server.read("Score")
    finally:
        server.close()
    assert (publish["delivered"], publish["pending"]) == (0, 3) and publish["failures"] >= 1
    assert values == (False, 0.0)
    error = _outage(jsonl)
    assert "the server offers no endpoint with security None (it offers " \
        "Basic256Sha256,SignAndEncrypt): give --opcua-security" in error, error
    assert "Traceback" not in jsonl.read_text()


def test_server_certificate_of_another_ca_is_refused(runner, pki: OpcUaPki, tmp_path: Path
                                                     ) -> None:
    other = make_opcua_pki(tmp_path / "other", "Another CA")
    server = SecureServer(pki)
    try:
        publish, jsonl = _run(runner, tmp_path, server, [False, True], opcua_security=SECURE,
                              client_cert=pki.client_cert, client_key=pki.client_key,
                              ca_file=other.ca, drain_s=0.5, max_wait_s=0.25)
        values = server.read("Reject"), server.read("Score")
    finally:
        server.close()
    assert (publish["delivered"], publish["pending"]) == (0, 2) and values == (False, 0.0)
    error = _outage(jsonl)
    assert "the server's certificate (CN=opcua-server.plant.test, issued by CN=Plant OPC UA CA) " \
        "is not trusted: no certificate there signed it" in error, error
    assert f"--publish-ca {other.ca} holds neither it nor the CA that signed it" in error, error


def test_server_certificate_itself_in_publish_ca_is_trusted(runner, pki: OpcUaPki,
                                                            tmp_path: Path) -> None:
    server = SecureServer(pki)
    try:
        publish, _jsonl = _run(runner, tmp_path, server, [True], opcua_security="Basic256Sha256,"
                               "SignAndEncrypt", client_cert=pki.client_cert,
                               client_key=pki.client_key, ca_file=pki.server_cert)
        values = server.read("Reject")
    finally:
        server.close()
    assert (publish["delivered"], publish["pending"]) == (1, 0) and values is True


def test_server_certificate_out_of_its_validity_is_named(pki: OpcUaPki) -> None:
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    security = Security("Basic256Sha256", "Sign", trusted=(cert,), ca_file=pki.ca)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert check_server_certificate(der, security, now) is None
    later = check_server_certificate(der, security, now + datetime.timedelta(days=2))
    assert "(CN=opcua-server.plant.test) is valid only from " in later
    assert "renew it on the server (or set the station's clock)" in later


def _files(pki: OpcUaPki, folder: Path) -> dict[str, str]:
    """Placeholders of the refusals below → files."""
    key = serialization.load_der_private_key(pki.client_key.read_bytes(), None)
    (folder / "encrypted.der").write_bytes(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    tls = make_pki(folder / "tls")  # EC certificates without an application URI
    return {"CA": str(pki.ca), "CERT": str(pki.client_cert), "KEY": str(pki.client_key),
            "OTHERKEY": str(pki.server_key), "ENCKEY": str(folder / "encrypted.der"),
            "ECCERT": str(tls.client_cert), "ECKEY": str(tls.client_key),
            "MISSING": str(folder / "station.der"), "UNREADABLE": "/proc/self/mem"}


OPC = ["--publish", "opc.tcp://127.0.0.1:4840", "--opcua-node", "verdict=ns=2;s=R"]


@pytest.mark.parametrize(("args", "message"), [
    (["--publish", "mqtt://127.0.0.1:1883/v", "--opcua-security", SECURE],
     "--opcua-security is for OPC UA: add --publish opc.tcp://HOST:4840"),
    (["--opcua-security", SECURE], "--opcua-security is an option of --publish"),
    ([*OPC, "--opcua-security", "Basic256,Sign"], "give POLICY,MODE with POLICY one of "
     "Basic256Sha256, Aes128Sha256RsaOaep, Aes256Sha256RsaPss and MODE one of Sign, "
     "SignAndEncrypt"),
    ([*OPC, "--opcua-security", "Basic256Sha256,Encrypt"], "MODE one of Sign, SignAndEncrypt"),
    ([*OPC, "--opcua-security", SECURE], "needs the station's application instance "
     "certificate: give --publish-client-cert FILE and --publish-client-key FILE"),
    ([*OPC, "--opcua-security", SECURE, "--publish-client-cert", "CERT"],
     "--opcua-security needs both --publish-client-cert FILE"),
    ([*OPC, "--opcua-security", SECURE, "--publish-client-cert", "MISSING",
      "--publish-client-key", "KEY"], "station.der: no such file; give the PEM or DER file"),
    ([*OPC, "--opcua-security", SECURE, "--publish-client-cert", "CERT",
      "--publish-client-key", "UNREADABLE"], "/proc/self/mem: cannot read it"),
    ([*OPC, "--opcua-security", SECURE, "--publish-client-cert", "CERT",
      "--publish-client-key", "ENCKEY"], "encrypted.der: the key is encrypted"),
    ([*OPC, "--opcua-security", SECURE, "--publish-client-cert", "CERT",
      "--publish-client-key", "OTHERKEY"], "the key is not the certificate's"),
    ([*OPC, "--opcua-security", SECURE, "--publish-client-cert", "ECCERT",
      "--publish-client-key", "ECKEY"], "OPC UA security policies need an RSA certificate"),
    ([*OPC, "--opcua-security", SECURE, "--publish-client-cert", "CERT",
      "--publish-client-key", "KEY", "--publish-ca", "KEY"], "holds no certificate"),
    ([*OPC, "--publish-ca", "CA"], "--publish-ca is for the TLS outputs"),
])
def test_refused_before_the_model_loads(args: list[str], message: str, pki: OpcUaPki,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(pki, tmp_path)
    assert_refused_before_the_model_loads([files.get(a, a) for a in args], message, tmp_path,
                                          monkeypatch, capsys)
