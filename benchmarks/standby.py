"""Failover time, cold vs hot standby, as the journal store grows: `python -m benchmarks.standby`.

For each preload size N, a fresh directory gets N persistent 1 KiB messages written straight
through `JournalStore` (fast, no broker). Then:

* cold: broker A starts alone; it takes the lock at once and recovers cold (what every store did
  before the hot standby, and what leveldb/appendlog still do);
* warm: broker B starts as a slave, its standby loads and follows A; once B logs "hot standby
  ready", A is killed with SIGKILL and B takes over. Repeated `--rounds` times, the old master
  coming back as the next slave.

Each takeover is read from the master's timeline line (lock_taken → store_recovered →
connector_bound); "kill → receipt" is measured by a client that retries CONNECT + a receipted
persistent SEND every 5 ms from the moment of the kill. The slave's RSS is read from /proc when
its standby is ready. Progress goes to stderr, one JSON document to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.brokers import BrokerProcess, free_port
from config.model import StoreSettings
from stores.base import AddMessage, StoredMessage
from stores.registry import create_store

HOSTS = ("127.0.0.2", "127.0.0.3")
BATCH = 1000
READY = "hot standby ready"


def progress(text: str) -> None:
    print(f"[standby] {text}", file=sys.stderr, flush=True)


async def preload(data_dir: Path, count: int, size: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = create_store(data_dir, StoreSettings())
    await store.open()
    body = b"x" * size
    stamp = str(int(time.time() * 1000))
    for start in range(0, count, BATCH):
        ops = [
            AddMessage("/queue/bench", StoredMessage(
                f"ID:preload-{n}", "/queue/bench",
                {"persistent": "true", "priority": "4", "timestamp": stamp}, body))
            for n in range(start, min(count, start + BATCH))
        ]  # fmt: skip
        await store.write(ops)
        if start % 100_000 == 0 and start:
            progress(f"preloaded {start}")
    await store.close()


def rss_mib(pid: int | None) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} within {timeout} s")


def receipted_send(host: str, port: int, timeout: float = 0.5) -> bool:
    """CONNECT and one receipted persistent SEND over a raw socket; True once the RECEIPT arrives."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"CONNECT\naccept-version:1.2\nhost:bench\n\n\x00"
                         b"SEND\ndestination:/queue/probe\npersistent:true\nreceipt:r1\n\nprobe\x00")
            reply = b""
            deadline = time.monotonic() + timeout
            while b"RECEIPT" not in reply and len(reply) < 65536 and time.monotonic() < deadline:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                reply += chunk
            return b"receipt-id:r1" in reply
    except OSError:
        return False


def kill_to_receipt(victim: BrokerProcess, successor: BrokerProcess, timeout: float) -> tuple[float, float]:
    """Seconds from SIGKILL to the first receipted SEND on `successor`, and the kill's wall time."""
    killed, killed_wall = time.monotonic(), time.time()
    victim.signal(signal.SIGKILL)
    deadline = killed + timeout
    while time.monotonic() < deadline:
        if receipted_send(successor.host, successor.port):
            return time.monotonic() - killed, killed_wall
        time.sleep(0.005)
    raise TimeoutError(f"no receipted SEND on {successor.name} within {timeout} s")


def log_since(broker: BrokerProcess, since: float) -> str:
    """Lines logged after `since` (wall time): a restarted broker's earlier lines do not count."""
    with broker._lock:
        return "\n".join(line for at, line in broker.lines if at >= since)


def phases(broker: BrokerProcess, count_before: int, timeout: float) -> dict[str, float]:
    wait_for(lambda: len(broker.timelines) > count_before, timeout, f"{broker.name}'s timeline")
    t = broker.timelines[-1]
    return {"recover_s": round(t.store_recovered - t.lock_taken, 4),
            "bind_s": round(t.connector_bound - t.store_recovered, 4),
            "total_s": round(t.connector_bound - t.lock_taken, 4)}


def run_size(root: Path, count: int, rounds: int, size: int, timeout: float) -> dict[str, object]:
    data_dir = root / f"n{count}"
    started = time.monotonic()
    asyncio.run(preload(data_dir, count, size))
    progress(f"N={count}: preloaded in {time.monotonic() - started:.1f} s")
    port = free_port(HOSTS)
    a = BrokerProcess("a", HOSTS[0], port, data_dir, lock_acquire_interval=0.1, lock_keepalive_period=0.3)
    b = BrokerProcess("b", HOSTS[1], port, data_dir, lock_acquire_interval=0.1, lock_keepalive_period=0.3)
    result: dict[str, object] = {"preload": count, "message_bytes": size}
    try:
        a.start()
        result["cold"] = phases(a, 0, timeout)
        result["master_rss_mib"] = rss_mib(a.pid)
        progress(f"N={count}: cold takeover {result['cold']}")
        warm: list[dict[str, float]] = []
        master, slave = a, b
        for r in range(rounds):
            before, since = len(slave.timelines), time.time()
            slave.start()
            wait_for(lambda s=slave, t=since: READY in log_since(s, t), timeout, f"{slave.name}'s standby")
            result.setdefault("slave_rss_mib", rss_mib(slave.pid))
            time.sleep(0.5)  # the standby is following, not loading
            seconds, killed_wall = kill_to_receipt(master, slave, timeout)
            entry = {**phases(slave, before, timeout), "kill_to_receipt_s": round(seconds, 4),
                     # The kernel drops a dead process's locks after tearing down its memory.
                     "kill_to_lock_s": round(slave.timelines[-1].lock_taken - killed_wall, 4),
                     "warm": "adopted the warm broker" in log_since(slave, since)}
            warm.append(entry)
            progress(f"N={count}: warm takeover {r + 1}/{rounds}: {entry}")
            master.wait_exit(10)
            master, slave = slave, master
        result["warm"] = warm
    except TimeoutError:
        for broker in (a, b):
            progress(f"{broker.name} (alive: {broker.alive}):\n{broker.tail(40)}")
        raise
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.standby", description=__doc__.splitlines()[0])
    parser.add_argument("--preload", type=int, nargs="+", default=[0, 100_000, 1_000_000],
                        help="store sizes to measure (messages)")
    parser.add_argument("--rounds", type=int, default=3, help="warm takeovers per size")
    parser.add_argument("--size", type=int, default=1024, help="message body bytes")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on every wait, seconds")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data (default: a temp dir)")
    args = parser.parse_args(argv)
    if any(n < 0 or n > 5_000_000 for n in args.preload) or not 1 <= args.rounds <= 20:
        parser.error("--preload must be 0..5,000,000 and --rounds 1..20")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="batonmq-standby-", dir=args.dir))
    try:
        results = [run_size(root, n, args.rounds, args.size, args.timeout) for n in args.preload]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
