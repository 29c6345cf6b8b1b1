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
import socket
import sys
import threading
import time
from pathlib import Path

from stores.fscheck.worker import LineChild

ROOT = Path(__file__).resolve().parents[2]


def _main(argv: list[str]) -> int:
    from stores.lock.directory import DirectoryLock
    from stores.lock.fencing import bump_epoch, read_epoch
    from stores.lock.heartbeat import HeartbeatWriter
    from stores.lock.identity import Holder, LockLost

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
    writer = HeartbeatWriter(args.data_dir, holder, stale_after=args.beat or 0.0)
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


class LockProc(LineChild):
    """A running `lockproc` child with a line protocol; always use as a context manager."""

    name = "lockproc"

    def __init__(self, data_dir: Path, *args: str) -> None:
        super().__init__([sys.executable, "-m", "tests.helpers.lockproc", str(data_dir), *args], cwd=ROOT)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(_main(sys.argv[1:]))
