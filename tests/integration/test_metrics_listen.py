"""Where the metrics endpoint listens and what it names, on a real broker process.

The endpoint has no authentication and lists destinations, so by default it binds loopback even
when the STOMP connector is on another address; `--metrics-host` moves it, and
`--no-metrics-destination-names` sums the per-destination series into one.
"""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.cluster import BrokerProc, free_port
from tests.helpers.stomppy import send_receipted

HOST = "127.0.0.2"  # the STOMP connector's address: not loopback's 127.0.0.1


def scrape(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
        return reply.read().decode()


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def started(tmp_path: Path, *extra: str) -> tuple[BrokerProc, int]:
    metrics = free_port(("127.0.0.1", HOST))
    extra = ("--metrics-port", str(metrics), *extra)
    proc = BrokerProc("m1", HOST, free_port((HOST,)), tmp_path / "data", extra=extra)
    proc.start()
    assert proc.wait_role("master", 20), proc.log_text()
    return proc, metrics


@pytest.mark.parametrize("names", [True, False])
def test_metrics_bind_loopback_by_default_and_may_hide_destination_names(tmp_path: Path, names: bool) -> None:
    proc, metrics = started(tmp_path, *(() if names else ("--no-metrics-destination-names",)))
    try:
        assert send_receipted(HOST, proc.port, "/queue/payroll", ["a", "b"]) == ["a", "b"]
        assert send_receipted(HOST, proc.port, "/queue/orders", ["c"]) == ["c"]
        assert not reachable(HOST, metrics)  # not on the connector's address...
        text = scrape("127.0.0.1", metrics)  # ...only on loopback
        assert "batonmq_role" in text
        if names:
            assert 'batonmq_destination_enqueued_total{destination="/queue/payroll"} 2.0' in text
        else:
            assert "payroll" not in text and "orders" not in text
            assert "batonmq_destination_enqueued_total 3.0" in text
    finally:
        proc.stop()


def test_metrics_host_moves_the_endpoint(tmp_path: Path) -> None:
    proc, metrics = started(tmp_path, "--metrics-host", HOST)
    try:
        assert "batonmq_role" in scrape(HOST, metrics)
        assert not reachable("127.0.0.1", metrics)
        assert f"metrics and /healthz on http://{HOST}:{metrics}" in proc.log_text()
    finally:
        proc.stop()
