"""Small synchronous wrappers around stomp.py, the independent client the tests trust."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Any

import stomp


class Recorder(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.receipts: set[str] = set()
        self.messages: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self.error_bodies: list[str] = []
        self.receipt_event = threading.Condition()
        self.disconnected = threading.Event()

    def on_receipt(self, frame) -> None:
        with self.receipt_event:
            self.receipts.add(frame.headers["receipt-id"])
            self.receipt_event.notify_all()

    def on_message(self, frame) -> None:
        self.messages.put(frame)

    def on_error(self, frame) -> None:
        self.errors.append(frame.headers.get("message", frame.body))
        self.error_bodies.append(frame.body)

    def on_disconnected(self) -> None:
        self.disconnected.set()

    def wait_receipt(self, receipt: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.receipt_event:
            while receipt not in self.receipts:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.disconnected.is_set():
                    return receipt in self.receipts
                self.receipt_event.wait(min(remaining, 0.1))
        return True


class Listener(stomp.ConnectionListener):
    """Every frame stomp.py hands us, in queues a test takes from with a timeout."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[Any] = queue.Queue()
        self.connected: queue.Queue[Any] = queue.Queue()
        self.disconnected = threading.Event()

    def on_connected(self, frame: Any) -> None:
        self.connected.put(frame)

    def on_message(self, frame: Any) -> None:
        self.messages.put(frame)

    def on_receipt(self, frame: Any) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame: Any) -> None:
        self.errors.put(frame)

    def on_disconnected(self) -> None:
        self.disconnected.set()


def connect(host: str, port: int, **kwargs) -> tuple[stomp.Connection, Recorder]:
    conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), auto_content_length=True)
    recorder = Recorder()
    conn.set_listener("recorder", recorder)
    conn.connect(wait=True, **kwargs)
    return conn, recorder


def forget_dead_peer(conn: stomp.Connection, recorder: Recorder, timeout: float = 5.0) -> None:
    """Close a connection whose broker was killed.

    stomp.py's receiver thread closes the socket before it marks the connection down, so a
    DISCONNECT sent in between fails with EBADF: wait for the receiver to notice first.
    """
    recorder.disconnected.wait(timeout)
    with contextlib.suppress(OSError):  # the peer is gone; only the local side is left to close
        if conn.is_connected():
            conn.disconnect()


def send_receipted(
    host: str, port: int, destination: str, bodies: list[str], timeout: float = 5.0
) -> list[str]:
    """Send each body persistently, waiting for its RECEIPT; return the bodies that were receipted."""
    conn, recorder = connect(host, port)
    receipted: list[str] = []
    try:
        for i, body in enumerate(bodies):
            receipt = f"r-{i}"
            conn.send(destination, body, headers={"persistent": "true"}, receipt=receipt)
            if not recorder.wait_receipt(receipt, timeout):
                break
            receipted.append(body)
    finally:
        if conn.is_connected():
            conn.disconnect()
    return receipted


def drain(host: str, port: int, destination: str, idle: float = 1.5, limit: int = 100000) -> list:
    """Consume with client-individual acks until `idle` seconds pass without a message.

    Every ACK asks for a RECEIPT and is waited for: only an acknowledged ACK is known durable.
    """
    conn, recorder = connect(host, port)
    conn.subscribe(destination, id="drain", ack="client-individual")
    frames = []
    try:
        while len(frames) < limit:
            try:
                frame = recorder.messages.get(timeout=idle)
            except queue.Empty:
                break
            frames.append(frame)
            receipt = f"ack-{len(frames)}"
            conn.ack(frame.headers["ack"], receipt=receipt)
            if not recorder.wait_receipt(receipt, 5.0):
                raise AssertionError(f"no receipt for ACK of {frame.body!r}")
    finally:
        conn.disconnect()
    return frames
