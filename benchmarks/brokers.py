"""BatonMQ broker processes for the benchmarks: start, watch stderr for role and timeline lines, signal.

The master logs one line per takeover (broker/ha/master.py):
    broker <name>: timeline epoch=<n> lock_taken=<unix> store_recovered=<unix> connector_bound=<unix>
and every role change as `broker <name>: role <old> -> <new> (epoch <n>)`.
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
from collections import deque
from dataclasses import dataclass
from pathlib import Path

TIMELINE = re.compile(
    r"broker (\S+): timeline epoch=(\d+) lock_taken=([0-9.]+) store_recovered=([0-9.]+) "
    r"connector_bound=([0-9.]+)"
)
ROLE = re.compile(r"broker (\S+): role (\w+) -> (\w+)")
KEPT_LINES = 2000


@dataclass(frozen=True)
class Timeline:
    name: str
    epoch: int
    lock_taken: float
    store_recovered: float
    connector_bound: float


def parse_timeline(line: str) -> Timeline | None:
    match = TIMELINE.search(line)
    if match is None:
        return None
    name, epoch, *times = match.groups()
    return Timeline(name, int(epoch), *(float(t) for t in times))


def free_port(hosts: tuple[str, ...]) -> int:
    """A port free on every one of `hosts` (a bounded number of tries)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(host, port) for host in hosts):
            return port
    raise RuntimeError(f"no port free on all of {hosts}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a live process in KiB, from /proc/PID/status; {} once it is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return found


class BrokerProcess:
    """`python -m broker start` in its own session; stderr read by a thread into a bounded buffer."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        data_dir: Path,
        store: str = "journal",
        lock_acquire_interval: float | None = None,
        lock_keepalive_period: float | None = None,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.name, self.host, self.port = name, host, port
        self.extra = extra  # more `batonmq start` flags
        self.env = env or {}  # more variables (BATONMQ_LIMITS__... for settings without a flag)
        self.data_dir, self.store = data_dir, store
        self.lock_acquire_interval = lock_acquire_interval
        self.lock_keepalive_period = lock_keepalive_period
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: deque[tuple[float, str]] = deque(maxlen=KEPT_LINES)
        self.timelines: list[Timeline] = []
        self.role: str | None = None
        self.roles: list[str] = []  # every role entered, in order (the line buffer is bounded)
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "broker", "start", "--name", self.name, "--data", str(self.data_dir),
               "--store", self.store, "--connector", f"tcp://{self.host}:{self.port}"]
        if self.lock_acquire_interval is not None:
            cmd += ["--lock-acquire-interval", str(self.lock_acquire_interval)]
        if self.lock_keepalive_period is not None:
            cmd += ["--lock-keepalive-period", str(self.lock_keepalive_period)]
        return cmd + list(self.extra)

    def start(self) -> BrokerProcess:
        if self._reader is not None:
            self._reader.join(5)  # the last lines of a previous run must not set this run's role
        self.role = None
        self.roles = []
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            now = time.time()
            line = raw.decode(errors="replace").rstrip()
            with self._lock:
                self.lines.append((now, line))
                timeline = parse_timeline(line)
                if timeline is not None:
                    self.timelines.append(timeline)
                role = ROLE.search(line)
                if role is not None:
                    self.role = role.group(3)
                    self.roles.append(self.role)
        proc.stderr.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def latest_timeline(self) -> Timeline | None:
        with self._lock:
            return self.timelines[-1] if self.timelines else None

    def wait_accepting(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                return False
            if accepts(self.host, self.port):
                return True
            time.sleep(0.02)
        return False

    def signal(self, signum: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, graceful: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `graceful` seconds; waits for the stderr reader too."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait_exit(graceful) is None:
                self.signal(signal.SIGKILL)
                self.wait_exit(10)
        if self._reader is not None:
            self._reader.join(5)

    def tail(self, count: int = 30) -> str:
        with self._lock:
            return "\n".join(line for _, line in list(self.lines)[-count:])
