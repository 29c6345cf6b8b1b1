"""A well-behaved client beside a hostile load: one receipted SEND at a time, each RECEIPT timed.

Runs in a thread over a raw socket (no client library), so the only thing it measures is how long
the broker took to answer it while someone else's work ran.
"""

from __future__ import annotations

import socket
import threading
import time

from tests.helpers.rawstomp import RawStomp


class Victim(threading.Thread):
    """Sends to `destination` every `interval` s and waits for each RECEIPT (at most `timeout` s)."""

    def __init__(self, host: str, port: int, destination: str = "/queue/victim",
                 interval: float = 0.01, timeout: float = 30.0) -> None:
        super().__init__(name="victim", daemon=True)
        self.peer = RawStomp(host, port, timeout=timeout)
        connected = self.peer.connect()
        if not connected.startswith("CONNECTED"):
            raise RuntimeError(f"victim could not connect: {connected!r}")
        self.destination = destination
        self.interval = interval
        self.timeout = timeout
        self.samples: list[tuple[float, float]] = []  # (sent at, seconds to its RECEIPT)
        self.failure: str | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self._halt.is_set():
            seq += 1
            sent = time.monotonic()
            try:
                self.peer.send_frame("SEND", {"destination": self.destination, "receipt": f"v{seq}"}, b"v")
            except OSError as error:
                self.failure = f"SEND {seq}: {error}"
                return
            frame = self.peer.read_frame(self.timeout)
            took = time.monotonic() - sent
            if not frame.startswith("RECEIPT") or f"receipt-id:v{seq}" not in frame:
                self.failure = f"SEND {seq}: no RECEIPT within {self.timeout} s, got {frame[:200]!r}"
                return
            self.samples.append((sent, took))
            self._halt.wait(max(0.0, self.interval - took))

    def stop(self) -> None:
        self._halt.set()
        self.join(self.timeout + 5)
        try:
            self.peer.close()
        except OSError:
            pass

    def during(self, start: float, end: float) -> list[float]:
        """RECEIPT times of the SENDs made between `start` and `end` (time.monotonic())."""
        return [took for sent, took in self.samples if start <= sent <= end]


class Drain(threading.Thread):
    """Reads and counts what the broker writes to `sock` (a hostile consumer that keeps up)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(name="drain", daemon=True)
        self.sock = sock
        self.bytes = 0
        self.nuls = 0  # frames end in NUL: a count of frames received (bodies here hold none)
        self.data = bytearray()
        self.keep = 0  # bytes of the stream to keep for inspection
        self._halt = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._halt.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)
            self.nuls += chunk.count(0)
            if len(self.data) < self.keep:
                self.data += chunk[: self.keep - len(self.data)]

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
