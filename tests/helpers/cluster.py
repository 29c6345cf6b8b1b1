"""Real broker processes on loopback addresses that share one data directory and one port.

Each "host" is a loopback address (127.0.0.2, .3, ...) binding the same port, as three hosts
would. `AcceptMonitor` polls every address throughout a test and records any instant at which
two brokers accepted connections.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import brokers

ROLE_LINE = re.compile(r"broker (\S+): role (\w+) -> (\w+)")
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
STOP_GRACE = 5.0  # seconds a broker gets to exit after SIGTERM at the end of a test


def free_port(hosts: tuple[str, ...] = HOSTS) -> int:
    """A port that is free on every one of `hosts`."""
    return brokers.free_port(hosts)


accepts = brokers.accepts  # a listening socket: TCP connect succeeds


def serves(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if the broker answers a STOMP CONNECT with CONNECTED (it is serving, not just listening)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"CONNECT\naccept-version:1.2\nhost:probe\n\n\x00")
            reply = b""
            while b"\x00" not in reply and len(reply) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.lstrip(b"\r\n").startswith(b"CONNECTED")
    except OSError:
        return False


@dataclass
class BrokerProc:
    name: str
    host: str
    port: int
    data_dir: Path
    store: str = "journal"
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    _reader: threading.Thread | None = None
    _stop_requested: bool = False

    def start(self) -> BrokerProc:
        self._release_pipe()
        self.lines = []
        self._stop_requested = False
        cmd = [
            sys.executable, "-m", "broker", "start",
            "--name", self.name,
            "--data", str(self.data_dir),
            "--store", self.store,
            "--connector", f"tcp://{self.host}:{self.port}",
            "--lock-acquire-interval", "0.1",
            "--lock-keepalive-period", "0.3",
            "--lock-timeout", "2",
            *self.extra,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env, start_new_session=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append((time.time(), raw.decode(errors="replace").rstrip()))

    @property
    def role(self) -> str | None:
        for _, line in reversed(self.lines):
            match = ROLE_LINE.search(line)
            if match:
                return match.group(3)
        return None

    def wait_role(self, role: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.role == role:
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return self.role == role
            time.sleep(0.02)
        return False

    def accepting(self) -> bool:
        return accepts(self.host, self.port)

    def serving(self) -> bool:
        return serves(self.host, self.port)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def request_stop(self) -> None:
        """SIGTERM, the graceful stop (and, under `make coverage`, the one that saves its data).

        Sent once per process: a second signal would make the broker skip its graceful path."""
        if self.proc is not None and self.proc.poll() is None and not self._stop_requested:
            self._stop_requested = True
            self.signal(signal.SIGCONT)  # a paused broker must run to act on it
            self.signal(signal.SIGTERM)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """End the process: SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
        self.request_stop()
        if self.proc is not None and self.wait_exit(grace) is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
        self._release_pipe()

    def _release_pipe(self) -> None:
        """Close the previous process's stderr once it has exited and its last lines are read."""
        if self.proc is None or self.proc.stderr is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        self.proc.stderr.close()

    def log_text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def stop_all(brokers: list[BrokerProc]) -> None:
    """Ask every broker to stop first, so they exit side by side rather than one after another."""
    for broker in brokers:
        broker.request_stop()
    for broker in brokers:
        broker.stop()


class AcceptMonitor:
    """Polls every broker's address; `violations` lists instants when two accepted at once.

    `level="tcp"` counts a listening socket (the kernel completes handshakes even for a frozen
    process); `level="stomp"` counts a broker that answers CONNECT with CONNECTED, i.e. serves.
    """

    def __init__(self, brokers: list[BrokerProc], period: float = 0.02, level: str = "tcp") -> None:
        self.brokers = brokers
        self.period = period
        self._probe = BrokerProc.accepting if level == "tcp" else BrokerProc.serving
        self.violations: list[tuple[float, list[str]]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AcceptMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            accepting = [b for b in self.brokers if self._probe(b)]
            if len(accepting) > 1:
                # Re-check the earlier ones after the later one accepted: both listening at once is proven.
                still = [b for b in accepting if self._probe(b)]
                if len(still) > 1:
                    self.violations.append((time.time(), [b.name for b in still]))
            self.samples += 1
            self._stop.wait(self.period)

    def masters_now(self) -> list[BrokerProc]:
        return [b for b in self.brokers if b.accepting()]


def wait_for_single_master(brokers: list[BrokerProc], timeout: float) -> BrokerProc:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        accepting = [b for b in brokers if b.proc is not None and b.proc.poll() is None and b.accepting()]
        if len(accepting) == 1 and accepting[0].role == "master":
            return accepting[0]
        time.sleep(0.02)
    logs = "\n---\n".join(f"{b.name}:\n{b.log_text()}" for b in brokers)
    raise AssertionError(f"no single master within {timeout} s\n{logs}")
