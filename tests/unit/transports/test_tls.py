"""TLS contexts from real PEM files: what a bad file says, and the versions both sides allow."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from config.errors import ConfigError
from config.model import BrokerConfig, TlsSettings
from tests.helpers.tls import Pki, make_pki
from transports.registry import create_server
from transports.tls import TlsServer, check_tls_connectors, client_context, server_context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def refusal(settings: TlsSettings, client_auth: str | None = None) -> tuple[str, str]:
    with pytest.raises(ConfigError) as info:
        server_context(settings, client_auth)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return info.value.key, info.value.problem


def test_a_good_server_context_is_tls_1_2_or_later_and_verifies_as_asked(pki: Pki) -> None:
    context = server_context(TlsSettings(cert=pki.cert, key=pki.key, ca=pki.ca))
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_NONE
    assert context.options & ssl.OP_NO_RENEGOTIATION
    settings = TlsSettings(cert=pki.cert, key=pki.key, ca=pki.ca, client_auth="optional")
    assert server_context(settings).verify_mode is ssl.CERT_OPTIONAL
    assert server_context(settings, "required").verify_mode is ssl.CERT_REQUIRED  # the URI's option wins
    # The key may sit in the certificate's file.
    assert server_context(TlsSettings(cert=pki.client)).verify_mode is ssl.CERT_NONE


def test_bad_files_name_the_setting(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not pem\n")
    assert refusal(TlsSettings(cert=tmp_path / "absent.pem", key=pki.key)) == (
        "tls.cert", f"no such file: {tmp_path / 'absent.pem'}")
    directory = ("tls.cert", f"is a directory, not a file: {tmp_path}")
    assert refusal(TlsSettings(cert=tmp_path, key=pki.key)) == directory
    assert refusal(TlsSettings(cert=junk, key=pki.key))[0] == "tls.cert"
    assert "no PEM certificate" in refusal(TlsSettings(cert=junk, key=pki.key))[1]
    assert refusal(TlsSettings(cert=pki.cert, key=junk)) == ("tls.key", f"{junk}: no PEM private key in it")
    key, problem = refusal(TlsSettings(cert=pki.cert))
    assert key == "tls.cert" and "give tls.key if the key is in a file of its own" in problem
    key, problem = refusal(TlsSettings(cert=pki.cert, key=pki.expired_key))
    assert key == "tls.key"
    assert problem == f"{pki.expired_key}: this key does not belong to the certificate in {pki.cert}"
    key, problem = refusal(TlsSettings(cert=pki.cert, key=pki.key, ca=junk))
    assert key == "tls.ca" and "no PEM certificate" in problem
    assert refusal(TlsSettings(cert=pki.cert, key=pki.key), "required")[0] == "tls.ca"


def test_an_encrypted_key_is_refused_rather_than_prompted_for(pki: Pki, tmp_path: Path) -> None:
    loaded = serialization.load_pem_private_key(pki.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(loaded.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.BestAvailableEncryption(b"secret")))
    key, problem = refusal(TlsSettings(cert=pki.cert, key=encrypted))
    assert key == "tls.key" and "the private key is encrypted" in problem


def test_client_context_checks_host_names_and_labels_its_flags(pki: Pki, tmp_path: Path) -> None:
    context = client_context(pki.ca)
    assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1  # only the bundle given: no system CA widens the trust
    assert client_context(pki.ca, pki.client).check_hostname
    with pytest.raises(ConfigError) as info:
        client_context(tmp_path / "absent.pem")
    assert info.value.key == "--tls-ca"
    with pytest.raises(ConfigError) as info:
        client_context(pki.ca, key=pki.key)
    assert info.value.key == "--tls-key" and "give --tls-cert too" in info.value.problem


def test_the_registry_builds_a_tls_server_per_connector_with_its_own_policy(pki: Pki) -> None:
    settings = TlsSettings(cert=pki.cert, key=pki.key, ca=pki.ca)
    server = create_server("ssl://127.0.0.1:0?transport.needClientAuth=true&maximumConnections=3",
                           lambda link: None, BrokerConfig().limits, settings)  # type: ignore[arg-type,return-value]
    assert isinstance(server, TlsServer) and server.scheme == "ssl"
    assert server.context.verify_mode is ssl.CERT_REQUIRED and server.limits.max_connections == 3
    with pytest.raises(ConfigError):
        create_server("ssl://127.0.0.1:0", lambda link: None, BrokerConfig().limits)  # type: ignore[arg-type,return-value]


def test_startup_check_builds_every_tls_connector(pki: Pki, tmp_path: Path) -> None:
    connectors = ["tcp://127.0.0.1:1", "ssl://127.0.0.1:2"]
    check_tls_connectors(BrokerConfig(connectors=connectors, tls=TlsSettings(cert=pki.cert, key=pki.key)))
    (tmp_path / "gone.pem").write_text(pki.cert.read_text())
    late = BrokerConfig(connectors=connectors, tls=TlsSettings(cert=tmp_path / "gone.pem", key=pki.key))
    (tmp_path / "gone.pem").unlink()
    with pytest.raises(ConfigError, match="no such file"):
        check_tls_connectors(late)
