"""TLS for STOMP: the `ssl://` and `stomp+ssl://` connectors, and the client side's context.

The TLS connector is the TCP connector with an `ssl.SSLContext` handed to `loop.create_server`
(asyncio and uvloop both do the handshake before `connection_made`, so StreamWire reads the
peer's certificate there and the session sees it as `Credentials.peer_certificate`). Both sides
speak TLS 1.2 or later only; renegotiation is off.

Every file is read here, so that a missing, unreadable, non-PEM or mismatched one is one
ConfigError naming the setting (`tls.cert`, or `--tls-ca` on the client command line) instead of
an OpenSSL "PEM lib" message. Keys must be unencrypted: an encrypted key would make OpenSSL prompt
on the terminal of a daemon; file permissions protect it instead.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from config.connector import ClientAuth, parse_connector_uri
from config.errors import ConfigError
from config.model import BrokerConfig, TlsSettings
from transports.tcp import TcpServer

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
# A peer that opens a socket and never finishes the handshake holds it this long at most
# (asyncio's default is 60 s).
HANDSHAKE_TIMEOUT = 10.0
MAX_PEM_BYTES = 1024 * 1024
_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class TlsServer(TcpServer):
    """A TCP connector whose peers speak TLS first; everything else is TcpServer's."""

    def __init__(self, *args: Any, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context = context

    def _listen_options(self) -> dict[str, Any]:
        return {"ssl": self.context, "ssl_handshake_timeout": HANDSHAKE_TIMEOUT}


def server_context(tls: TlsSettings, client_auth: ClientAuth | None = None) -> ssl.SSLContext:
    """The context of a TLS connector; `client_auth` (from the URI) overrides `tls.client_auth`."""
    if tls.cert is None:
        raise ConfigError("tls.cert", "a TLS connector needs a certificate (--tls-cert)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    load_chain(context, tls.cert, tls.key, "tls.cert", "tls.key")
    level = client_auth or tls.client_auth
    if tls.ca is not None:
        load_ca(context, tls.ca, "tls.ca")
    elif level != "none":
        raise ConfigError("tls.ca", f"client_auth {level} needs the CA bundle client certificates chain to")
    context.verify_mode = _VERIFY[level]
    return context


def client_context(ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                   names: tuple[str, str, str] = ("--tls-ca", "--tls-cert", "--tls-key")) -> ssl.SSLContext:
    """A client's context: the server's certificate must chain to `ca` (else the system's CAs)
    and name the host dialled (checked against the URL's host, sent as SNI). `cert`/`key` are a
    client certificate for a connector that asks for one. `names` label the three in errors."""
    # Hostname checking and CERT_REQUIRED either way; with `ca`, only that bundle is trusted.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        load_ca(context, ca, names[0])
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    _harden(context)
    if cert is not None:
        load_chain(context, cert, key, names[1], names[2])
    elif key is not None:
        raise ConfigError(names[2], f"a key without a certificate; give {names[1]} too")
    return context


def check_tls_connectors(config: BrokerConfig) -> None:
    """Build every TLS connector's context once, at startup, so that a bad file is exit 2 there
    rather than an error at takeover, possibly hours later on a slave."""
    for uri in config.connectors:
        connector = parse_connector_uri(uri)
        if connector.tls:
            server_context(config.tls, connector.client_auth)


def _harden(context: ssl.SSLContext) -> None:
    context.minimum_version = MINIMUM_VERSION
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION


def load_chain(context: ssl.SSLContext, cert: Path, key: Path | None, cert_name: str, key_name: str) -> None:
    cert_text = _read_pem(cert, cert_name)
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        raise ConfigError(cert_name, f"{cert}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
    key_text = _read_pem(key, key_name) if key is not None else cert_text
    key_file, where = (key, key_name) if key is not None else (cert, cert_name)
    if "ENCRYPTED" in key_text:
        raise ConfigError(where, f"{key_file}: the private key is encrypted; give an unencrypted PEM key "
                                 "(readable by the broker's user only)")
    if "PRIVATE KEY-----" not in key_text:
        hint = "" if key is not None else f" (give {key_name} if the key is in a file of its own)"
        raise ConfigError(where, f"{key_file}: no PEM private key in it{hint}")
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            problem = f"{key_file}: this key does not belong to the certificate in {cert}"
            raise ConfigError(where, problem) from None
        raise ConfigError(cert_name, f"{cert}: cannot load the certificate and key: {_reason(exc)}") from None


def load_ca(context: ssl.SSLContext, ca: Path, name: str) -> None:
    if "-----BEGIN CERTIFICATE-----" not in _read_pem(ca, name):
        raise ConfigError(name, f"{ca}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
    try:
        context.load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        raise ConfigError(name, f"{ca}: cannot load the CA certificates: {_reason(exc)}") from None


def _read_pem(path: Path, name: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(name, f"no such file: {path}") from None
    except IsADirectoryError:
        raise ConfigError(name, f"is a directory, not a file: {path}") from None
    except PermissionError:
        raise ConfigError(name, f"permission denied: {path}") from None
    except OSError as exc:
        raise ConfigError(name, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PEM_BYTES:
        raise ConfigError(name, f"{path}: larger than {MAX_PEM_BYTES // 1024} KiB, not a PEM file")
    return data.decode("ascii", "replace")


def _no_password() -> bytes:
    # Never reached for the keys load_chain lets through; if OpenSSL still asks, it must not prompt.
    return b""


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).replace("_", " ").lower()
