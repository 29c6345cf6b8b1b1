"""The admin API of a real `batonmq start` (docs/admin.md): list, browse, purge, move, copy, remove,
delete and the group view, over real HTTP, with stomp.py filling and draining the queues (spilled
non-persistent messages too); a move survives kill -9 of the master exactly once."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.adminhttp import HOST, AdminBroker, call, depth, wait_for
from tests.helpers.stomppy import connect, send_receipted
from tests.integration.test_stomp_messaging import Peer

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AdminBroker]:
    monkeypatch.setenv("BATONMQ_LIMITS__MAX_REDELIVERIES", "0")  # the first NACK dead-letters
    node = AdminBroker("admin1", tmp_path / "data").start()
    try:
        yield node
    finally:
        node.proc.stop()


def fill(node: AdminBroker, destination: str, count: int, prefix: str = "m") -> None:
    bodies = [f"{prefix}{i}" for i in range(count)]
    assert send_receipted(HOST, node.port, destination, bodies) == bodies


def drain(node: AdminBroker, destination: str, count: int) -> list[str]:
    peer = Peer(node.port)
    try:
        peer.conn.subscribe(destination, id="d", ack="auto")
        bodies = peer.bodies(count)
        assert peer.nothing(0.5)
        return bodies
    finally:
        peer.close()


def test_list_and_browse_show_without_removing(broker: AdminBroker) -> None:
    fill(broker, "/queue/orders", 7)
    status, data, headers = broker.call("GET", "/api/destinations")
    assert status == 200 and headers["content-type"] == "application/json"
    (row,) = [r for r in data["destinations"] if r["name"] == "/queue/orders"]
    counts = (row["kind"], row["depth"], row["enqueued"], row["in_flight"], row["consumers"])
    assert counts == ("queue", 7, 7, 0, 0)
    assert 0 <= row["oldest_age_ms"] < 120_000
    status, page, _ = broker.call("GET", "/api/queues/orders/messages?offset=2&limit=3&body=1")
    assert status == 200 and page["depth"] == 7
    assert [m["body"] for m in page["messages"]] == ["m", "m", "m"]  # one byte of each body
    assert all(m["body_truncated"] and m["persistent"] and m["timestamp"] > 0 for m in page["messages"])
    full = broker.call("GET", "/api/queues/orders/messages?limit=100")[1]["messages"]
    assert [m["body"] for m in full] == [f"m{i}" for i in range(7)]
    assert [m["id"] for m in page["messages"]] == [m["id"] for m in full[2:5]]
    # A consumer holding one unacked message: in flight, not browsed, still counted.
    peer = Peer(broker.port)
    try:
        peer.conn.subscribe("/queue/orders", id="c", ack="client-individual",
                            headers={"activemq.prefetchSize": "1"})
        first = peer.get()
        assert wait_for(lambda: depth(broker, "/queue/orders") == 6, 10)
        row = broker.call("GET", "/api/destinations")[1]["destinations"][0]
        assert (row["depth"], row["consumers"]) == (6, 1)
        status, data, _ = broker.call("DELETE", f"/api/queues/orders/messages/{first.headers['message-id']}")
        assert status == 409 and "in flight" in data["error"]
        status, data, _ = broker.call("DELETE", "/api/queues/orders")
        assert status == 409 and "consumer" in data["error"]
    finally:
        peer.close()
    assert drain(broker, "/queue/orders", 7) == [f"m{i}" for i in range(7)]  # nothing was taken by browsing


def test_purge_remove_and_delete_persist_across_a_restart(broker: AdminBroker) -> None:
    fill(broker, "/queue/a", 5)
    fill(broker, "/queue/b", 3)
    status, data, _ = broker.call("POST", "/api/queues/a/purge")
    assert (status, data) == (200, {"destination": "/queue/a", "purged": 5})
    ids = [m["id"] for m in broker.call("GET", "/api/queues/b/messages")[1]["messages"]]
    status, data, _ = broker.call("DELETE", f"/api/queues/b/messages/{ids[1]}")
    assert status == 200 and data["removed"] == ids[1]
    assert broker.call("DELETE", f"/api/queues/b/messages/{ids[1]}")[0] == 404
    assert broker.call("GET", "/api/queues/nope/messages")[0] == 404
    assert depth(broker, "/queue/a") == 0 and depth(broker, "/queue/b") == 2
    status, data, _ = broker.call("DELETE", "/api/queues/a")
    assert status == 200 and data["deleted"] == "/queue/a"
    assert depth(broker, "/queue/a") is None
    broker.proc.signal(signal.SIGKILL)  # the answers came after the store writes: they stick
    broker.proc.wait_exit(10)
    broker.start()
    assert depth(broker, "/queue/a") in (None, 0)
    assert drain(broker, "/queue/b", 2) == ["m0", "m2"]


def test_dead_letters_go_home_and_copies_get_new_ids(broker: AdminBroker) -> None:
    fill(broker, "/queue/work", 3)
    peer = Peer(broker.port)
    try:
        peer.conn.subscribe("/queue/work", id="w", ack="client-individual")
        for _ in range(3):
            frame = peer.get()
            peer.conn.nack(frame.headers["ack"])  # max_redeliveries 0: straight to the DLQ
    finally:
        peer.close()
    assert wait_for(lambda: depth(broker, "/queue/ActiveMQ.DLQ") == 3, 10)
    dlq = broker.call("GET", "/api/queues/ActiveMQ.DLQ/messages")[1]["messages"]
    assert {m["headers"]["original-destination"] for m in dlq} == {"/queue/work"}
    status, data, _ = broker.call("POST", "/api/queues/ActiveMQ.DLQ/move",
                                  {"to": "/queue/audit", "copy": True, "ids": [dlq[0]["id"]]})
    assert status == 200 and (data["copied"], data["targets"]) == (1, {"/queue/audit": 1})
    (copied,) = broker.call("GET", "/api/queues/audit/messages")[1]["messages"]
    assert copied["id"] != dlq[0]["id"] and copied["body"] == dlq[0]["body"]
    status, data, _ = broker.call("POST", "/api/queues/ActiveMQ.DLQ/move", {"to": None})
    assert status == 200 and (data["moved"], data["targets"]) == (3, {"/queue/work": 3})
    assert depth(broker, "/queue/ActiveMQ.DLQ") == 0
    home = broker.call("GET", "/api/queues/work/messages")[1]["messages"]
    assert all("original-destination" not in m["headers"] for m in home)
    assert sorted(drain(broker, "/queue/work", 3)) == ["m0", "m1", "m2"]
    bad = broker.call("POST", "/api/queues/audit/move", {"to": "/topic/x"})
    assert bad[0] == 400 and "topic" in bad[1]["error"]
    assert broker.call("POST", "/api/queues/audit/move", {"ids": "x"})[0] == 400


def test_remove_and_move_take_spilled_non_persistent_messages(tmp_path: Path) -> None:
    spilling = ("--non-persistent", "spill", "--cursor-window", "1kb")
    node = AdminBroker("spill1", tmp_path / "data", *spilling).start()
    try:
        conn, recorder = connect(HOST, node.port)
        try:
            for i in range(300):  # non-persistent: beyond a 1 KiB window they spill
                conn.send("/queue/np", f"n{i:03d}", receipt=f"r{i}" if i == 299 else None)
            assert recorder.wait_receipt("r299", 10)
        finally:
            conn.disconnect()
        rows = node.call("GET", "/api/destinations")[1]["destinations"]
        (row,) = [r for r in rows if r["name"] == "/queue/np"]
        assert row["depth"] == 300 and row["spilled"] > 250
        (victim,) = node.call("GET", "/api/queues/np/messages?offset=150&limit=1")[1]["messages"]
        status, data, _ = node.call("DELETE", f"/api/queues/np/messages/{victim['id']}")
        assert status == 200 and data["removed"] == victim["id"]
        assert node.call("DELETE", f"/api/queues/np/messages/{victim['id']}")[0] == 404
        status, data, _ = node.call("POST", "/api/queues/np/move", {"to": "/queue/other", "limit": 100})
        assert status == 200 and (data["moved"], data["skipped"]) == (100, 0)
        assert depth(node, "/queue/np") == 199 and depth(node, "/queue/other") == 100
        bodies = [f"n{i:03d}" for i in range(300)]
        assert drain(node, "/queue/other", 100) == bodies[:100]
        assert drain(node, "/queue/np", 199) == [b for b in bodies[100:] if b != "n150"]
    finally:
        node.proc.stop()


def test_a_move_is_one_write_kill_9_leaves_each_message_once(tmp_path: Path) -> None:
    """Move 2,000 persistent messages, kill -9 the master right after the answer, and let the slave
    take over: every message is in the target once, none left in the source."""
    data = tmp_path / "data"
    master = AdminBroker("m", data).start()
    slave = AdminBroker("s", data)
    try:
        slave.start(role="slave")
        fill(master, "/queue/src", 2000)
        status, answer, _ = master.call("POST", "/api/queues/src/move", {"to": "/queue/dst"})
        assert status == 200 and answer["moved"] == 2000
        master.proc.signal(signal.SIGKILL)
        assert slave.proc.wait_role("master", 60), slave.proc.log_text()
        assert wait_for(lambda: depth(slave, "/queue/dst") == 2000, 30)
        assert depth(slave, "/queue/src") in (None, 0)
        bodies = drain(slave, "/queue/dst", 2000)
        assert sorted(bodies) == sorted(f"m{i}" for i in range(2000))
    finally:
        slave.proc.stop()
        master.proc.stop()


def test_group_view_lists_master_and_slave_with_its_standby(tmp_path: Path) -> None:
    data = tmp_path / "data"
    master = AdminBroker("alpha", data).start()
    slave = AdminBroker("beta", data)
    try:
        slave.start(role="slave")
        fill(master, "/queue/g", 3)

        def members() -> dict[str, dict]:
            return {m["name"]: m for m in master.call("GET", "/api/brokers")[1]["members"]}

        assert wait_for(lambda: (members().get("beta") or {}).get("standby", {}).get("ready"), 30), members()
        group = master.call("GET", "/api/brokers")[1]
        assert group["master"]["name"] == "alpha" and group["epoch"] == group["master"]["epoch"] >= 1
        rows = members()
        assert rows["alpha"]["role"] == "master" and rows["alpha"]["epoch"] == group["epoch"]
        beta = rows["beta"]
        assert beta["role"] == "slave" and beta["fresh"] and beta["admin_url"] == slave.url
        assert wait_for(lambda: (members()["beta"]["standby"] or {}).get("messages") == 3, 30), members()
        assert members()["beta"]["standby"]["lag_seconds"] < 30
        # The slave answers for the group, and refuses destination operations, naming why.
        assert {m["name"] for m in slave.call("GET", "/api/brokers")[1]["members"]} == {"alpha", "beta"}
        status, answer, _ = slave.call("POST", "/api/queues/g/purge")
        assert status == 503 and "slave" in answer["error"]
        assert slave.call("GET", "/api/destinations")[1]["destinations"] == []
        master.proc.stop()
        assert slave.proc.wait_role("master", 60)
        assert wait_for(lambda: slave.call("GET", "/api/overview")[1]["self"]["role"] == "master", 10)
        assert wait_for(lambda: not {m["name"]: m for m in slave.call("GET", "/api/brokers")[1]["members"]}
                        ["alpha"]["fresh"], 30)
    finally:
        slave.proc.stop()
        master.proc.stop()


def test_hostile_and_malformed_requests(broker: AdminBroker) -> None:
    fill(broker, "/queue/h", 1)
    assert broker.call("POST", "/api/queues/h/purge", headers={"Content-Type": "text/plain"})[0] == 415
    assert broker.call("POST", "/api/queues/h/purge", headers={"Origin": "http://evil.example"})[0] == 403
    assert broker.call("POST", "/api/queues/h/move", headers={})[0] == 200  # "{}": all, to their origin
    assert broker.call("GET", "/api/queues/h/messages?limit=0")[0] == 400
    assert broker.call("GET", "/api/queues/h/messages?offset=-1")[0] == 400
    assert broker.call("PUT", "/api/queues/h", body={})[0] == 405
    nested = "[" * 200_000 + "]" * 200_000  # within the body bound, deeper than the JSON parser goes
    assert call_raw(broker.admin_port, "/api/queues/h/move", nested.encode()).startswith(b"HTTP/1.0 400")
    assert broker.call("GET", "/api/nothing")[0] == 404
    assert depth(broker, "/queue/h") == 1
    with socket.create_connection((HOST, broker.admin_port), timeout=10) as sock:
        sock.sendall(b"POST /api/queues/h/purge HTTP/1.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 99999999\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 413")
    with socket.create_connection((HOST, broker.admin_port), timeout=10) as sock:
        sock.sendall(b"POST /api/queues/h/purge HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 411")
    status, _, headers = call(broker.admin_port, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def call_raw(port: int, path: str, body: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return sock.recv(200)


def test_deleting_a_topic_waits_for_its_subscribers(broker: AdminBroker) -> None:
    peer = Peer(broker.port)
    try:
        peer.conn.subscribe("/topic/news", id="n", ack="auto")
        assert wait_for(lambda: depth(broker, "/topic/news") is not None, 10)
        status, data, _ = broker.call("DELETE", "/api/topics/news")
        assert status == 409 and "subscriber" in data["error"]
        assert broker.call("POST", "/api/topics/news/purge")[0] == 405
        peer.conn.unsubscribe("n", headers={"receipt": "u"})
        peer.receipt("u")
        status, data, _ = broker.call("DELETE", "/api/topics/news")
        assert (status, data) == (200, {"deleted": "/topic/news", "purged": 0})
        assert depth(broker, "/topic/news") is None
        assert broker.call("DELETE", "/api/topics/news")[0] == 404
    finally:
        peer.close()
