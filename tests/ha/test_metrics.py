"""Every broker of a running group serves /metrics and /healthz with its role, slaves included."""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers.cluster import BrokerProc, free_port, stop_all, wait_for_single_master
from tests.helpers.rawstomp import RawStomp
from tests.helpers.stomppy import drain, send_receipted
from tests.integration.test_stomp_transport import error_of

pytestmark = pytest.mark.ha


def metrics_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def get(host: str, port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def role_of(text: str) -> str:
    """The role whose batonmq_role gauge is 1."""
    for line in text.splitlines():
        if line.startswith("batonmq_role{") and line.endswith(" 1.0"):
            return line.split('role="', 1)[1].split('"', 1)[0]
    raise AssertionError("no batonmq_role gauge at 1:\n" + text[:2000])


def test_masters_and_slaves_report_their_role(tmp_path):
    hosts = ("127.0.0.2", "127.0.0.3")
    port = free_port(hosts)
    brokers, scrape = [], {}
    for i, host in enumerate(hosts):
        scrape[f"b{i + 1}"] = metrics_port(host)
        # Each on its own address (the default, 127.0.0.1, would be one address for all).
        extra = ("--metrics-port", str(scrape[f"b{i + 1}"]), "--metrics-host", host)
        brokers.append(BrokerProc(f"b{i + 1}", host, port, tmp_path / "shared", extra=extra).start())
    try:
        master = wait_for_single_master(brokers, timeout=20)
        slave = next(b for b in brokers if b is not master)
        assert slave.wait_role("slave", 10)
        assert send_receipted(master.host, master.port, "/queue/metered", ["a", "b", "c"]) == ["a", "b", "c"]
        assert len(drain(master.host, master.port, "/queue/metered", idle=0.5, limit=1)) == 1

        status, text = get(master.host, scrape[master.name], "/metrics")
        assert status == 200 and role_of(text) == "master"
        assert "batonmq_epoch 1.0" in text
        assert 'batonmq_destination_enqueued_total{destination="/queue/metered"} 3.0' in text
        assert 'batonmq_destination_dequeued_total{destination="/queue/metered"} 1.0' in text
        assert "batonmq_store_commit_seconds_count" in text
        assert 'batonmq_gc_collections_total{generation="2"}' in text
        assert 'batonmq_gc_longest_pause_seconds{generation="0"}' in text
        assert get(master.host, scrape[master.name], "/healthz") == (200, "master\n")

        status, text = get(slave.host, scrape[slave.name], "/metrics")
        assert status == 200 and role_of(text) == "slave"
        assert get(slave.host, scrape[slave.name], "/healthz") == (503, "slave\n")

        master.signal(signal.SIGKILL)
        wait_for_single_master([slave], timeout=10)
        status, text = get(slave.host, scrape[slave.name], "/metrics")
        assert role_of(text) == "master"
        assert "batonmq_failovers_total 1.0" in text
        assert "batonmq_lock_acquisitions_total 1.0" in text
        assert get(slave.host, scrape[slave.name], "/healthz") == (200, "master\n")
    finally:
        stop_all(brokers)


def test_governance_counters_are_exported(tmp_path):
    """Connections closed by the CONNECT timeout and destinations removed by GC show up as counters."""
    host = "127.0.0.2"
    config = tmp_path / "governed.toml"
    config.write_text("[limits]\nconnect_timeout = 0.3\nconnection_scan_interval = 0.05\n"
                      "destination_gc_idle = 0.3\ndestination_gc_interval = 0.05\n")
    scrape = metrics_port(host)
    extra = ("--config", str(config), "--metrics-port", str(scrape), "--metrics-host", host)
    broker = BrokerProc("g1", host, free_port((host,)), tmp_path / "shared", extra=extra).start()
    try:
        wait_for_single_master([broker], timeout=20)
        with RawStomp(host, broker.port) as silent:  # never sends CONNECT
            assert error_of(silent.read_frame(5.0)) == "connect timeout"
        with RawStomp(host, broker.port) as raw:
            assert raw.connect().startswith("CONNECTED")
            raw.send_frame("SEND", {"destination": "/topic/unheard", "receipt": "r"}, b"x")
            assert raw.read_frame(5.0).startswith("RECEIPT")
            wanted = ('batonmq_connections_closed_total{reason="connect_timeout"} 1.0',
                      "batonmq_destinations_collected_total 1.0")
            deadline = time.monotonic() + 10
            text = ""
            while time.monotonic() < deadline and not all(w in text for w in wanted):
                text = get(host, scrape, "/metrics")[1]
                time.sleep(0.1)
            assert all(w in text for w in wanted), text[-3000:]
            # Counted by the unit tests of the allowance; here: exported while the broker serves.
            assert re.search(r"^batonmq_bulk_reads_deferred_total \d", text, re.M), text[-3000:]
    finally:
        broker.stop()
