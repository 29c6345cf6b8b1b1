"""Per-destination policies in a real broker process (`[[policy]]` in its TOML file, stomp.py as the
client): a queue under a small memory_limit without flow control is refused at once, naming its
policy, while another queue on the same broker keeps accepting; a cursor_window policy pages that
queue's persistent messages where a queue with the broker-wide window holds them all in memory; the
admin API lists what each destination got."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.helpers.adminhttp import AdminBroker
from tests.helpers.cluster import BrokerProc
from tests.helpers.metricsbroker import scrape, start_scraped
from tests.helpers.stomppy import connect

HOST = "127.0.0.1"
CONFIG = """
[[policy]]
queue = "SMALL.>"
memory_limit = "64kb"
producer_flow_control = false

[[policy]]
queue = "PAGED"
cursor_window = "8kb"

[[policy]]
topic = "PRICES.>"
memory_limit = "1mb"

[limits]
producer_flow_control_timeout = 30.0
"""
BODY = "x" * 4096
WAIT = 10.0  # seconds for any one RECEIPT; far below the 30 s a held producer would wait


def start(tmp_path: Path) -> BrokerProc:
    return start_scraped("pol", HOST, tmp_path, CONFIG)


def paged(proc: BrokerProc, destination: str) -> int:
    text = scrape(proc)
    match = re.search(rf'^batonmq_destination_paged\{{destination="{re.escape(destination)}"\}} (\S+)$',
                      text, re.MULTILINE)
    assert match is not None, [line for line in text.splitlines() if "paged" in line]
    return int(float(match.group(1)))


def test_a_small_policy_refuses_at_once_naming_itself_and_another_queue_keeps_accepting(tmp_path) -> None:
    proc = start(tmp_path)
    try:
        conn, recorder = connect(HOST, proc.port)
        start_time = time.monotonic()
        receipted = 0
        for i in range(40):  # 160 KiB of non-persistent messages for a 64 KiB queue nobody consumes
            conn.send("/queue/SMALL.orders", BODY, receipt=f"s{i}", persistent="false")
            if not recorder.wait_receipt(f"s{i}", WAIT):
                break
            receipted += 1
        refused_after = time.monotonic() - start_time
        assert 10 <= receipted <= 16, (receipted, recorder.errors)  # 64 KiB of 4 KiB messages, then full
        assert recorder.errors == ['destination full (policy[queue="SMALL.>"].memory_limit)']
        assert "at once" in recorder.error_bodies[0] and "producer_flow_control" in recorder.error_bodies[0]
        assert refused_after < WAIT, f"refused after {refused_after:.1f} s: the producer was held back"
        other, other_recorder = connect(HOST, proc.port)
        for i in range(40):  # the same bytes to a queue under the broker-wide limit: all taken
            other.send("/queue/OTHER", BODY, receipt=f"o{i}", persistent="false")
            assert other_recorder.wait_receipt(f"o{i}", WAIT), other_recorder.errors
        assert other_recorder.errors == []
        other.disconnect()
    finally:
        proc.stop()


def test_a_cursor_window_policy_pages_its_queue_where_the_default_window_does_not(tmp_path) -> None:
    proc = start(tmp_path)
    try:
        conn, recorder = connect(HOST, proc.port)
        for destination in ("/queue/PAGED", "/queue/DEFAULT"):
            for i in range(20):  # 80 KiB of persistent messages: ten 8 KiB windows, a fiftieth of 4 MiB
                conn.send(destination, BODY, receipt=f"{destination}{i}", persistent="true")
            assert recorder.wait_receipt(f"{destination}19", WAIT), recorder.errors
        assert paged(proc, "/queue/PAGED") >= 15  # an 8 KiB window holds about two of them
        assert paged(proc, "/queue/DEFAULT") == 0
        conn.subscribe("/queue/PAGED", id="1", ack="auto")
        bodies = [recorder.messages.get(timeout=WAIT).body for _ in range(20)]  # read back from the store
        assert bodies == [BODY] * 20
        conn.disconnect()
    finally:
        proc.stop()


def test_the_admin_api_shows_each_destinations_policy_and_its_settings(tmp_path) -> None:
    config = tmp_path / "pol.toml"
    config.write_text(CONFIG + "destination_memory_limit = '2mb'\n\n[store]\ncursor_window = '256kb'\n")
    node = AdminBroker("poladmin", tmp_path / "data", "--config", str(config)).start()
    try:
        conn, recorder = connect(HOST, node.port, headers={"client-id": "c1"})
        conn.subscribe("/topic/PRICES.eu", id="d", ack="auto", headers={"activemq.subscriptionName": "s"})
        for destination in ("/queue/SMALL.orders", "/queue/PAGED", "/queue/OTHER", "/topic/PRICES.eu"):
            conn.send(destination, "x", receipt=destination)
            assert recorder.wait_receipt(destination, WAIT), recorder.errors
        status, data, _ = node.call("GET", "/api/destinations")
        assert status == 200, data
        rows = {row["name"]: row for row in data["destinations"]}
        fields = ("policy", "memory_limit", "cursor_window", "producer_flow_control")
        got = {name: tuple(row[f] for f in fields) for name, row in rows.items()}
        kib = 1024
        assert got["/queue/SMALL.orders"] == ("SMALL.>", 64 * kib, 44 * kib + 819, False)  # 70% of 64 KiB
        assert got["/queue/PAGED"] == ("PAGED", 2048 * kib, 8 * kib, True)
        assert got["/queue/OTHER"] == ("default", 2048 * kib, 256 * kib, True)
        assert got["/topic/PRICES.eu"] == ("PRICES.>", 1024 * kib, 256 * kib, True)
        assert got["durable:c1:s"] == got["/topic/PRICES.eu"]  # a durable subscription takes its topic's
        assert rows["durable:c1:s"]["kind"] == "durable"
        conn.disconnect()
    finally:
        node.proc.stop()
