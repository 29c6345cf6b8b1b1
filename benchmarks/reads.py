"""Read-path benchmark: the cost of a paged drain from each store, and of its cold open.

    python -m benchmarks.reads [--stores journal,appendlog,leveldb] [--count N] [--dir DIR] [--runs 3]

Builds a queue of N 1 KiB messages (one message per write, as producers send them) in each store
once under DIR (kept: later runs reuse it), then, each run in a fresh process: `open()` (wall and
CPU seconds, all threads) and a drain of the whole queue with `read_batch` pages of 512, the
cursor's (µs per message, wall and CPU). Prints the median of the runs per figure. The figures
depend on the machine and its load: note both with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from config.model import StoreSettings
from stores.base import AddMessage, Store, StoredMessage
from stores.registry import create_store

QUEUE = "/queue/bench"
PAGE = 512
GROUP = 100  # writes in flight while building (group commits; each write is its own record)


def _store(root: Path, kind: str) -> Store:
    (root / kind).mkdir(parents=True, exist_ok=True)
    return create_store(root / kind, StoreSettings.model_validate({"type": kind, "sync": "never"}))


def _message(n: int, size: int) -> StoredMessage:
    return StoredMessage(f"bench-{n}", QUEUE, {"persistent": "true"}, os.urandom(16) + bytes(size - 16))


async def build(root: Path, kind: str, count: int) -> None:
    store = _store(root, kind)
    await store.open()
    for start in range(0, count, GROUP):
        stop = min(count, start + GROUP)
        writes = [store.write([AddMessage(QUEUE, _message(n, 1024))]) for n in range(start, stop)]
        await asyncio.gather(*writes)
    await store.close()


async def measure(root: Path, kind: str, count: int) -> dict[str, float]:
    """One run: open, then drain the queue a page at a time."""
    store = _store(root, kind)
    wall, cpu = time.perf_counter(), time.process_time()
    recovered = await store.open()
    opened = {"open_s": time.perf_counter() - wall, "open_cpu_s": time.process_time() - cpu}
    if recovered.depth(QUEUE) != count:
        raise AssertionError(f"{kind}: recovered {recovered.depth(QUEUE)} of {count}")
    wall, cpu = time.perf_counter(), time.process_time()
    after, read = None, 0
    while True:
        page = await store.read_batch(QUEUE, after, PAGE)
        if not page.messages:
            break
        read, after = read + len(page.messages), page.next
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await store.close()
    if read != count:
        raise AssertionError(f"{kind}: read {read} of {count}")
    return {**opened, "read_us": wall / count * 1e6, "read_cpu_us": cpu / count * 1e6}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reads", description=__doc__.split("\n")[0])
    parser.add_argument("--stores", default="journal,appendlog,leveldb")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/batonmq-reads"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", metavar="KIND", help=argparse.SUPPRESS)  # a run, in its own process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.dir / str(args.count)
    if args.one:
        print(json.dumps(asyncio.run(measure(root, args.one, args.count))))
        return 0
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    for kind in args.stores.split(","):
        if not (root / kind).exists():
            asyncio.run(build(root, kind, args.count))
        runs = []
        for _ in range(args.runs):
            cmd = [sys.executable, "-m", "benchmarks.reads", "--one", kind, "--count", str(args.count),
                   "--dir", str(args.dir)]
            runs.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
        medians = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
        print(f"{kind:9} N={args.count}: open {medians['open_s']:.3f} s ({medians['open_cpu_s']:.3f} s CPU), "
              f"read_batch {medians['read_us']:.1f} µs/msg ({medians['read_cpu_us']:.1f} µs CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
