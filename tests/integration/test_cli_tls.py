"""`batonmq start` with TLS as a real process: several connectors with their own limits, bad
certificate settings refused in one line with exit 2, and `produce`/`consume` over ssl://."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cluster import BrokerProc, free_port
from tests.helpers.rawstomp import RawStomp
from tests.helpers.tls import Pki, make_pki, tls_connect_frame
from tests.integration.test_cli_start import assert_config_error, start

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_flags(pki: Pki, *more: str) -> tuple[str, ...]:
    return ("--tls-cert", str(pki.cert), "--tls-key", str(pki.key), "--tls-ca", str(pki.ca), *more)


@pytest.fixture(scope="module")
def broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory):
    """One broker process: tcp:// with the broker-wide limits, ssl:// with its own."""
    tcp_port, ssl_port = free_port((HOST,)), free_port((HOST,))
    connector = f"ssl://{HOST}:{ssl_port}?maximumConnections=2&wireFormat.maxFrameSize=4096"
    proc = BrokerProc("tls1", HOST, tcp_port, tmp_path_factory.mktemp("data"),
                      extra=("--connector", connector, *tls_flags(pki)))
    proc.start()
    try:
        assert proc.wait_role("master", 20), proc.log_text()
        yield proc, ssl_port
    finally:
        proc.stop()


class TlsRawStomp(RawStomp):
    """RawStomp over TLS, trusting `ca`."""

    def __init__(self, host: str, port: int, ca: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        raw = socket.create_connection((host, port), timeout=2)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.buffer = b""


def batonmq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_tcp_and_ssl_connectors_at_once_each_with_its_own_limits(broker, pki: Pki) -> None:
    proc, ssl_port = broker
    held = [TlsRawStomp(HOST, ssl_port, pki.ca) for _ in range(2)]
    try:
        assert [raw.connect().partition("\n")[0] for raw in held] == ["CONNECTED"] * 2
        # maximumConnections=2 on ssl://: a third TLS client is refused with an ERROR...
        assert tls_connect_frame(HOST, ssl_port, pki.ca) == "ERROR"
        # ...while tcp:// keeps the broker-wide limit (1000) and frame size (100 MiB).
        plain = [RawStomp(HOST, proc.port) for _ in range(3)]
        assert [raw.connect().partition("\n")[0] for raw in plain] == ["CONNECTED"] * 3
        big = {"destination": "/queue/big", "receipt": "r", "content-length": "8192"}
        plain[0].send_frame("SEND", big, b"x" * 8192)
        assert plain[0].read_frame(5).startswith("RECEIPT")
        # wireFormat.maxFrameSize=4096 on ssl://: the same 8 KiB frame is an ERROR there.
        held[0].send_frame("SEND", big, b"x" * 8192)
        error = held[0].read_frame(5)
        assert error.startswith("ERROR") and "max 4096" in error, error
        for raw in plain:
            raw.close()
    finally:
        for raw in held:
            raw.close()
    assert f"connector listening on ssl://{HOST}:{ssl_port}" in proc.log_text()


def test_produce_and_consume_over_ssl_with_a_ca_file(broker, pki: Pki) -> None:
    proc, ssl_port = broker
    url = f"failover:(ssl://{HOST}:{ssl_port})?maxReconnectAttempts=0"
    # ssl:// allows two connections here: produce, then consume.
    sent = batonmq("produce", "--url", url, "--destination", "/queue/cli-tls", "--count", "20",
                   "--persistent", "--receipts", "--tls-ca", str(pki.ca), "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout.splitlines()[-1])["receipted"] == 20
    got = batonmq("consume", "--url", f"ssl://localhost:{ssl_port}", "--destination", "/queue/cli-tls",
                  "--count", "20", "--timeout", "5", "--tls-ca", str(pki.ca), "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout.splitlines()[-1])["unique"] == 20
    # Without the CA the system's are used, and they do not know this one: refused, exit 1.
    refused = batonmq("consume", "--url", f"ssl://{HOST}:{ssl_port}", "--destination", "/queue/cli-tls",
                      "--count", "1", "--timeout", "1")
    assert refused.returncode == 1 and "certificate verify failed" in refused.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--url", "tcp://127.0.0.1:1", "--tls-ca", "{ca}"),
         "--tls-ca given, but the URL names no ssl:// broker"),
        (("--url", "ssl://127.0.0.1:1", "--tls-ca", "/nonexistent/ca.pem"),
         "invalid --tls-ca: no such file: /nonexistent/ca.pem"),
        (("--url", "ssl://127.0.0.1:1", "--tls-key", "{key}"),
         "invalid --tls-key: a key without a certificate; give --tls-cert too"),
    ],
)
def test_client_tls_flags_are_checked_before_connecting(pki: Pki, args, message) -> None:
    filled = [arg.format(ca=pki.ca, key=pki.key) for arg in args]
    for command in ("produce", "consume"):
        result = batonmq(command, *filled, "--destination", "/queue/x")
        assert result.returncode == 2, result
        assert result.stderr.splitlines() == [f"batonmq: {message}"]


def test_bad_tls_settings_are_one_line_and_exit_2(pki: Pki, tmp_path: Path) -> None:
    data = ("--data", str(tmp_path / "data"))
    ssl_connector = ("--connector", "ssl://127.0.0.1:0")
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")
    cases = [
        ((*ssl_connector,), "tls", "needs a certificate"),
        ((*ssl_connector, "--tls-cert", str(tmp_path / "absent.pem")), "tls.cert", "no such file"),
        ((*ssl_connector, "--tls-cert", str(junk), "--tls-key", str(pki.key)), "tls.cert",
         "no PEM certificate"),
        ((*ssl_connector, "--tls-cert", str(pki.cert), "--tls-key", str(pki.expired_key)), "tls.key",
         "does not belong to the certificate"),
        ((*ssl_connector, *tls_flags(pki), "--tls-ca", str(junk)), "tls.ca", "no PEM certificate"),
        ((*ssl_connector, "--tls-cert", str(pki.cert), "--tls-key", str(pki.key),
          "--tls-client-auth", "required"), "tls", "set tls.ca"),
        ((*ssl_connector, *tls_flags(pki, "--tls-client-auth", "sometimes")), "tls.client_auth",
         "must be one of"),
        (("--connector", "ssl://127.0.0.1:0?needClientAuth=maybe", *tls_flags(pki)), "connectors",
         "needClientAuth must be true or false"),
    ]
    for flags, key, problem in cases:
        line = assert_config_error(start(*data, *flags), key)
        assert problem in line, line
    assert not (tmp_path / "data" / "lock").exists()  # refused before the broker took the lock


def test_xml_ssl_context_is_refused_and_tls_comes_from_the_environment(pki: Pki, tmp_path: Path) -> None:
    xml = tmp_path / "activemq.xml"
    connectors = ('<transportConnectors><transportConnector name="ssl" uri="ssl://127.0.0.1:0?'
                  'transport.needClientAuth=true"/></transportConnectors>')
    ssl_context = '<sslContext><sslContext keyStore="broker.ks"/></sslContext>'
    xml.write_text(f'<beans><broker brokerName="x">{ssl_context}{connectors}</broker></beans>')
    assert "PEM files" in assert_config_error(start("--config", str(xml)), "sslContext")
    xml.write_text(f'<beans><broker brokerName="x">{connectors}</broker></beans>')
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")
    env = {"BATONMQ_TLS_CERT": str(pki.cert), "BATONMQ_TLS_KEY": str(junk), "BATONMQ_TLS_CA": str(pki.ca)}
    line = assert_config_error(start("--config", str(xml), "--data", str(tmp_path / "d"), env=env), "tls.key")
    assert str(junk) in line
