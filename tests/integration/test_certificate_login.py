"""A TLS client certificate logs its user in (issue 13: "a client certificate may authenticate its
user"): stomp.py over ssl:// with alice's certificate and no login is alice, with alice's rights;
a password login still works beside it; an unmapped or foreign certificate is not anyone."""

from __future__ import annotations

from pathlib import Path

import pytest
import stomp
from cryptography import x509

from broker.engine.users import PasswordAuthenticator
from config.passwords import hash_password
from config.security import User
from tests.helpers.server import HOST, running_broker
from tests.helpers.tls import Pki, make_pki, tls_connect_frame
from tests.integration.test_tls_connector import stomppy, tls_settings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def subject_of(pem: Path) -> str:
    """The RFC 4514 subject of the first certificate in `pem`, as an operator would copy it."""
    return x509.load_pem_x509_certificate(pem.read_bytes()).subject.rfc4514_string()


def users() -> list[User]:
    return [User(name="alice", password_hash=hash_password("alice-pw"), groups=["apps"]),
            User(name="bob", password_hash=hash_password("bob-pw"), groups=["ops"])]


def authenticator(pki: Pki) -> PasswordAuthenticator:
    # The configured DN lists the attributes in another order than the certificate does.
    reordered = ",".join(reversed(subject_of(pki.client).split(",")))
    return PasswordAuthenticator(users(), None, {"alice": reordered})


def test_a_mapped_certificate_is_its_user_and_nothing_else_is(pki: Pki) -> None:
    auth = authenticator(pki)
    with running_broker(scheme="ssl", tls=tls_settings(pki, client_auth="optional"),
                        authenticator=auth) as broker:
        conn, _ = stomppy(broker.port, pki.ca, pki.client)  # no login, no passcode
        try:
            assert broker.broker is not None
            (session,) = broker.broker.sessions
            assert session.principal.name == "alice" and session.principal.groups == {"apps"}
        finally:
            conn.disconnect()
        # Without a certificate and without a login there is no one to be (anonymous is off).
        assert tls_connect_frame(HOST, broker.port, pki.ca) == "ERROR"
        # A password login works beside certificate logins, and is checked as usual.
        ok = stomp.Connection12([(HOST, broker.port)], heartbeats=(0, 0), timeout=3)
        ok.set_ssl(for_hosts=[(HOST, broker.port)], ca_certs=str(pki.ca))
        ok.connect("bob", "bob-pw", wait=True)
        ok.disconnect()
    with running_broker(scheme="ssl", tls=tls_settings(pki, client_auth="optional"),
                        authenticator=PasswordAuthenticator(users(), None, {})) as broker:
        # The same certificate where no user is mapped to it: refused, not anonymous.
        assert tls_connect_frame(HOST, broker.port, pki.ca, pki.client) == "ERROR"
