"""The stomp.py recipe of README.md ("Failover clients") survives a kill -9 of the master.

stomp.py tries a list of brokers when it connects, but neither reconnects an established
connection nor re-subscribes by itself (design.md section 5). The recipe does both in
`on_disconnected`, and its producer resends a SEND whose RECEIPT did not come with the same
`batonmq.producer-id`, so the broker's duplicate detection drops a copy it already stored.
The code between the RECIPE markers is the README's recipe, with a bounded retry loop and a
listener that also records receipts and messages for the checks.
"""

from __future__ import annotations

import queue
import signal
import threading
import time

import pytest

from tests.helpers.cluster import HOSTS, wait_for_single_master

pytestmark = pytest.mark.ha

# --- RECIPE -------------------------------------------------------------------------------------
import stomp  # noqa: E402


class Reconnecting(stomp.ConnectionListener):
    """Reconnects and re-subscribes when the connection drops; records receipts and messages."""

    def __init__(self, conn, subscriptions):
        self.conn = conn
        self.subscriptions = subscriptions  # [(destination, id, ack mode)]
        self.closing = False
        self.reconnecting = threading.Lock()
        self.receipts = set()
        self.changed = threading.Condition()
        self.messages = queue.Queue()

    def on_disconnected(self):
        # Called in stomp.py's receiver thread, also after our own disconnect() (hence `closing`).
        # Reconnecting from inside that thread races with its clean-up: use a thread of our own.
        if not self.closing:
            threading.Thread(target=self.reconnect, daemon=True).start()

    def reconnect(self):
        with self.reconnecting:  # one at a time
            for _ in range(1000):
                if self.closing or self.conn.is_connected():
                    return
                try:
                    connect_and_subscribe(self.conn, self.subscriptions)
                    return
                # AttributeError: stomp.py's sender can find its socket already torn down by its
                # receiver thread when the broker dies mid-connect ('NoneType' has no 'sendall').
                except (stomp.exception.StompException, OSError, AttributeError):
                    time.sleep(0.1)  # e.g. reached the old master while it was dying: try again

    def on_receipt(self, frame):
        with self.changed:
            self.receipts.add(frame.headers["receipt-id"])
            self.changed.notify_all()

    def on_message(self, frame):
        self.messages.put(frame)

    def wait_receipt(self, receipt, timeout):
        with self.changed:
            return self.changed.wait_for(lambda: receipt in self.receipts, timeout)


def connect_and_subscribe(conn, subscriptions):
    conn.connect(wait=True)  # tries every (host, port) of the list, reconnect_attempts_max passes
    for destination, sub_id, ack in subscriptions:
        conn.subscribe(destination, id=sub_id, ack=ack)


def open_connection(brokers, subscriptions=()):
    conn = stomp.Connection12(brokers, reconnect_attempts_max=-1, reconnect_sleep_initial=0.05,
                              reconnect_sleep_increase=0.5, reconnect_sleep_max=2.0, heartbeats=(0, 0))
    listener = Reconnecting(conn, list(subscriptions))
    conn.set_listener("reconnecting", listener)
    connect_and_subscribe(conn, listener.subscriptions)
    return conn, listener


def send_reliably(conn, listener, destination, body, producer_id, timeout=30.0):
    """Send until the broker receipts it. Every try carries the same batonmq.producer-id."""
    deadline = time.monotonic() + timeout
    for attempt in range(1000):
        receipt = f"{producer_id}/{attempt}"
        try:
            conn.send(destination, body, receipt=receipt,
                      headers={"persistent": "true", "batonmq.producer-id": producer_id})
        except (stomp.exception.NotConnectedException, OSError):
            pass  # the connection broke or is being re-established: try again shortly
        else:
            if listener.wait_receipt(receipt, 1.0):
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return False
# --- END RECIPE ---------------------------------------------------------------------------------


def test_stomppy_recipe_survives_kill9_of_the_master(cluster):
    brokers = cluster(3)
    wait_for_single_master(brokers, 20)
    addresses = [(host, brokers[0].port) for host in HOSTS]
    total, dest = 300, "/queue/stomppy"
    receipted: list[str] = []
    producer_conn, producer = open_connection(addresses)
    consumer_conn, consumer = open_connection(addresses, [(dest, "recipe-1", "client-individual")])

    def produce() -> None:
        for seq in range(total):
            pid = f"stomppy-producer:{seq}"
            assert send_reliably(producer_conn, producer, dest, f"m{seq}", pid), f"{pid} never receipted"
            receipted.append(pid)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(receipted) < total // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        master = wait_for_single_master(brokers, 20)
        master.signal(signal.SIGKILL)
        thread.join(60)
        assert not thread.is_alive() and len(receipted) == total
        frames, unique = [], set()
        deadline = time.monotonic() + 30
        while len(unique) < total and time.monotonic() < deadline:
            try:
                frame = consumer.messages.get(timeout=1.0)
            except queue.Empty:
                continue
            frames.append(frame)
            unique.add(frame.headers["batonmq.producer-id"])
            try:
                consumer_conn.ack(frame.headers["ack"], "recipe-1")
            except (stomp.exception.NotConnectedException, OSError):
                pass  # the ack is lost with the connection: the broker redelivers the message
    finally:
        for conn, listener in ((producer_conn, producer), (consumer_conn, consumer)):
            listener.closing = True
            with listener.reconnecting:  # let a reconnect under way end first: no thread outlives the test
                if conn.is_connected():
                    conn.disconnect()
    assert unique == set(receipted)
    seen: set[str] = set()
    for frame in frames:
        pid = frame.headers["batonmq.producer-id"]
        assert pid not in seen or frame.headers.get("redelivered") == "true", f"unflagged duplicate {pid}"
        seen.add(pid)
