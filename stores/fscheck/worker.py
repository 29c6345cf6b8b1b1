"""A lock holder in a separate OS process, for the checks that need one; and its parent-side handle.

    python -m stores.fscheck.worker hold LOCKDIR [--linger S]
    python -m stores.fscheck.worker records LOCKDIR FILE [--max N]

The worker takes `DirectoryLock(LOCKDIR)` without waiting, publishes its identity and says
`HOLDING <identity json>` (or `BUSY` and exits 3). `records` then appends numbered records
(stores.fscheck.records) to FILE and says `SYNCED <n>` after each record's fsync. A line `release`
or the end of stdin releases the lock, says `RELEASED` and exits 0. The checks kill it with SIGKILL
to play a crashed broker.

`--linger S` plays a file system that does not release a dead holder's lock: a forked child keeps
the locked open file description (an OFD lock belongs to it, not to a process) for S seconds
after the worker dies. Only fscheck's own tests use it, to make that failure real.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from stores.fscheck import records
from stores.lock.directory import DirectoryLock
from stores.lock.identity import Holder

MAX_LINE = 8192
MAX_RECORDS = 100_000
MAX_LINGER = 600.0
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory that holds `stores`


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _linger(seconds: float) -> int:
    """Fork a child that keeps every inherited descriptor, the locked one included, for a while."""
    pid = os.fork()
    if pid == 0:  # the child: detach from the parent's pipes so nobody waits on it
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            time.sleep(min(seconds, MAX_LINGER))
        finally:
            os._exit(0)
    return pid


def _write_records(path: Path, limit: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        for seq in range(1, limit + 1):
            data = memoryview(records.encode(seq))
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
            _say(f"SYNCED {seq}")  # only after fsync returned: the check's promise to verify
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stores.fscheck.worker")
    parser.add_argument("action", choices=["hold", "records"])
    parser.add_argument("lock_dir", type=Path)
    parser.add_argument("file", type=Path, nargs="?")
    parser.add_argument("--linger", type=float, default=0.0)
    parser.add_argument("--max", type=int, default=MAX_RECORDS)
    args = parser.parse_args(argv)
    if args.action == "records" and args.file is None:
        parser.error("records needs FILE")

    lock = DirectoryLock(args.lock_dir)
    if not lock.try_acquire():
        _say("BUSY")
        return 3
    holder = Holder("fscheck-worker", socket.gethostname() or "localhost", os.getpid(), time.time(), 0)
    lock.publish(holder)
    _say(f"HOLDING {holder.to_json()}")
    if args.linger > 0:
        _say(f"LINGER {_linger(args.linger)}")
    if args.action == "records":
        _write_records(args.file, max(1, min(args.max, MAX_RECORDS)))
    for line in sys.stdin:
        if line.strip() == "release":
            break
    lock.release()
    _say("RELEASED")
    return 0


class WorkerError(Exception):
    """The worker did not say what was expected in time, or exited early."""


class LineChild:
    """A child process that speaks a line protocol on stdin/stdout; use as a context manager.

    Shared by fscheck's worker and the lock tests' helper process: start it, read lines with a
    deadline, send lines, SIGKILL it and reap it.
    """

    name = "child"

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd
        )
        self.pid = self.proc.pid
        self._buffer = b""

    def __enter__(self) -> LineChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkerError(f"{self.name} pid {self.pid} said nothing for {timeout:.0f} s")
                if len(self._buffer) > MAX_LINE:
                    raise WorkerError(f"{self.name} pid {self.pid} wrote a line longer than {MAX_LINE} bytes")
                if sel.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        raise WorkerError(f"{self.name} pid {self.pid} exited: {self.stderr()}")
                    self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace")

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The next line, which must start with `prefix`; returns the rest of it."""
        line = self.readline(timeout)
        if not line.startswith(prefix):
            raise WorkerError(f"{self.name} pid {self.pid} said {line!r}, expected {prefix}")
        return line[len(prefix) :].strip()

    def remaining(self, prefix: str, limit: int = 1024 * 1024) -> list[int]:
        """After the worker died: the numbers on every `prefix` line it wrote and we have not read."""
        assert self.proc.stdout is not None
        data = self._buffer + self.proc.stdout.read(limit)  # the writer is dead: ends at once
        self._buffer = b""
        found = []
        for line in data.decode(errors="replace").splitlines():
            number = line.removeprefix(prefix).strip()
            if line.startswith(prefix) and number.isdigit():
                found.append(int(number))
        return found

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL and reap: the child's pid no longer exists afterwards (not even as a zombie)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        text = self.proc.stderr.read(4096).decode(errors="replace").strip()
        return text.splitlines()[-1] if text else f"exit code {self.proc.returncode}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class Worker(LineChild):
    """This module run as fscheck's worker process."""

    name = "worker"

    def __init__(self, *args: str) -> None:
        env = dict(os.environ)
        # Wherever the CLI runs from, the child imports the same `stores` as we do.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        super().__init__([sys.executable, "-m", "stores.fscheck.worker", *args], env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
