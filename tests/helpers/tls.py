"""Certificates made for one test run (trustme): a CA, a broker certificate for the loopback
addresses the tests use, client certificates good, expired and foreign, and a raw TLS peer.

Nothing is shipped or fixed: every run gets fresh keys, and the expired ones really are expired
(their notAfter lies in the past), so the checks under test are OpenSSL's own.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

# Every address a test broker binds, as IP SANs: the client checks the name it dialled.
BROKER_NAMES = ("localhost", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the broker's certificate and the good client certificates chain to
    cert: Path  # the broker's certificate (its chain follows it)
    key: Path  # ...and its private key, in a file of its own
    expired_cert: Path  # a broker certificate from `ca` whose validity ended yesterday
    expired_key: Path
    misnamed_cert: Path  # a broker certificate from `ca` for another host name only
    misnamed_key: Path
    client: Path  # alice: certificate and key in one file, from `ca`
    expired_client: Path  # bob, from `ca`, expired
    other_ca: Path  # a CA that signed nothing the broker trusts
    foreign_client: Path  # eve, signed by `other_ca`


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    past = {"not_before": now - datetime.timedelta(days=30), "not_after": now - datetime.timedelta(days=1)}
    files = {name: directory / f"{name}.pem" for name in Pki.__dataclass_fields__}
    ca.cert_pem.write_to_path(str(files["ca"]))
    other.cert_pem.write_to_path(str(files["other_ca"]))
    broker = ca.issue_cert(*BROKER_NAMES)
    expired = ca.issue_cert(*BROKER_NAMES, **past)
    misnamed = ca.issue_cert("broker.invalid")
    for leaf, cert, key in ((broker, "cert", "key"), (expired, "expired_cert", "expired_key"),
                            (misnamed, "misnamed_cert", "misnamed_key")):
        for index, pem in enumerate(leaf.cert_chain_pems):
            pem.write_to_path(str(files[cert]), append=index > 0)
        leaf.private_key_pem.write_to_path(str(files[key]))
    ca.issue_cert("alice@example.org", common_name="alice").private_key_and_cert_chain_pem.write_to_path(
        str(files["client"]))
    ca.issue_cert("bob@example.org", common_name="bob", **past).private_key_and_cert_chain_pem.write_to_path(
        str(files["expired_client"]))
    other.issue_cert("eve@example.org", common_name="eve").private_key_and_cert_chain_pem.write_to_path(
        str(files["foreign_client"]))
    return Pki(**files)


def tls_connect_frame(host: str, port: int, ca: Path, cert: Path | None = None, timeout: float = 3.0,
                      maximum: ssl.TLSVersion | None = None) -> str:
    """Handshake with `host`, send CONNECT, return the first frame's command ('' if the broker closed
    or the handshake failed). A raw peer, because in TLS 1.3 a refused client certificate shows only
    after the client's handshake is done, and stomp.py can then wait for ever."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert))
    if maximum is not None:
        context.maximum_version = maximum
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as sock:
            sock.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00")
            reply = b""
            while b"\x00" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except (ssl.SSLError, OSError):
        return ""
    return reply.lstrip(b"\r\n").partition(b"\n")[0].decode(errors="replace")
