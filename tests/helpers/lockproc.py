"""A lock holder in a separate OS process, for tests of stores.lock / fencing / heartbeat / takeover.

Run as `python -m tests.helpers.lockproc DATA_DIR [options]` from the repository root; `LockProc`
below starts it and talks to it. The child takes the lock (try or wait), optionally bumps the
epoch and beats the heartbeat, prints `ACQUIRED <holder json>` (or `BUSY` and exits 3), then obeys
lines on stdin: `verify` (prints `OK` or `LOST <reason>`), `release` (prints `RELEASED`, exits 0).
End of stdin releases too. Kill it with SIGKILL to test a crashed holder.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _main(argv: list[str]) -> int:
    from stores.fencing import bump_epoch, read_epoch
    from stores.heartbeat import HeartbeatWriter
    from stores.lock import DirectoryLock, Holder, LockLost

    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--name", default="lockproc")
    parser.add_argument("--host", default=socket.gethostname())
    parser.add_argument("--wait", type=float, default=None, help="wait_acquire(timeout) instead of try")
    parser.add_argument("--classic", action="store_true", help="classic POSIX locks instead of OFD")
    parser.add_argument("--bump", action="store_true", help="bump the epoch after taking the lock")
    parser.add_argument("--beat", type=float, default=None, help="heartbeat period in seconds")
    parser.add_argument("--once", action="store_true", help="report and exit at once")
    args = parser.parse_args(argv)

    lock = DirectoryLock(args.data_dir, ofd=False if args.classic else None)
    acquired = lock.wait_acquire(args.wait) if args.wait is not None else lock.try_acquire()
    if not acquired:
        print("BUSY", flush=True)
        return 3
    epoch = bump_epoch(args.data_dir) if args.bump else read_epoch(args.data_dir)
    holder = Holder(args.name, args.host, os.getpid(), time.time(), epoch)
    lock.publish(holder)
    stop = threading.Event()
    writer = HeartbeatWriter(args.data_dir, holder, period=args.beat or 0.0)
    beater = threading.Thread(target=_beat, args=(writer, args.beat, stop), daemon=True)
    if args.beat is not None:
        writer.beat()
        beater.start()
    print("ACQUIRED " + holder.to_json(), flush=True)
    line = ""
    if not args.once:
        for line in sys.stdin:
            if line.strip() == "verify":
                try:
                    lock.verify()
                    print("OK", flush=True)
                except LockLost as exc:
                    print("LOST " + exc.reason, flush=True)
            elif line.strip() in ("release", "release-clean"):
                break
        else:
            line = ""
    stop.set()
    if beater.is_alive():
        beater.join(10)
    if line.strip() == "release-clean":
        writer.mark_released()
    writer.close()
    lock.release()
    print("RELEASED", flush=True)
    return 0


def _beat(writer: object, period: float, stop: threading.Event) -> None:
    while not stop.wait(period):
        try:
            writer.beat()  # type: ignore[attr-defined]
        except Exception as exc:  # a test may replace the file under us: report, stop beating
            print(f"BEAT-FAILED {exc}", file=sys.stderr, flush=True)
            return


class LockProc:
    """A running `lockproc` child with a line protocol; always use as a context manager."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.lockproc", str(data_dir), *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self._buffer = b""

    def __enter__(self) -> LockProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The next stdout line, which must start with `prefix`; returns the rest of it."""
        line = self.readline(timeout)
        if not line.startswith(prefix):
            raise AssertionError(f"lockproc said {line!r}, expected {prefix!r}; stderr: {self._stderr()}")
        return line[len(prefix) :].strip()

    def readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"lockproc silent for {timeout} s; stderr: {self._stderr()}")
                if sel.select(remaining):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        raise AssertionError(f"lockproc exited ({self._stderr()})")
                    self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL and reap, so the pid no longer exists (not even as a zombie)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read(4096).decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(_main(sys.argv[1:]))
