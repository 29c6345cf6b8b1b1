"""Store benchmarks: awaited persistent writes, unsynced throughput, removes, recovery time.

    python -m benchmarks.stores [--stores journal,leveldb,appendlog] [--json FILE] [--quick] [--dir DIR]

Every phase is bounded by a message count and a deadline, whichever comes first. Progress goes to
stderr; the table to stdout. Figures depend on the disk far more than on the CPU: fsync latency
sets the awaited-write rate, so the machine and the data directory are recorded with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from config.model import StoreSettings
from stores.base import AddMessage, RemoveMessage, Store, StoredMessage
from stores.registry import STORES, create_store

KIB = 1024


@dataclass
class Scale:
    awaited: int  # writes per producer-count phase
    unsynced: int  # writes in the sync=never phase
    batches: int  # 100-message batches in the large-batch phase
    removes: int
    recovery: list[int]  # stored message counts to recover
    deadline: float  # seconds per phase


QUICK = Scale(awaited=3000, unsynced=20_000, batches=200, removes=5000, recovery=[10_000], deadline=8.0)
FULL = Scale(
    awaited=30_000,
    unsynced=200_000,
    batches=2000,
    removes=50_000,
    recovery=[10_000, 100_000, 1_000_000],
    deadline=30.0,
)
RECOVERY_BODY = 100  # bytes: recovery time is about record count, and 1M x 1 KiB would be 1 GiB per store


@dataclass
class Result:
    store: str
    phase: str
    messages: int
    seconds: float
    rate: float  # messages per second
    p50_ms: float | None = None
    p99_ms: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def make_message(n: int, size: int, queue: str = "/queue/bench") -> StoredMessage:
    return StoredMessage(f"bench-{n}", queue, {"persistent": "true"}, os.urandom(16) + bytes(size - 16))


class Bench:
    def __init__(self, kind: str, root: Path, scale: Scale) -> None:
        self.kind, self.root, self.scale = kind, root, scale
        self.results: list[Result] = []
        self.runs = 0

    async def _store(self, **settings: object) -> tuple[Store, Path]:
        self.runs += 1
        data_dir = self.root / f"{self.kind}-{self.runs}"
        data_dir.mkdir()
        store = create_store(data_dir, StoreSettings.model_validate({"type": self.kind, **settings}))
        await store.open()
        return store, data_dir

    def _record(self, result: Result) -> None:
        self.results.append(result)
        r = result
        progress(f"  {r.phase:<28} {r.messages:>9} msgs {r.seconds:8.2f} s {r.rate:>10.0f}/s")

    async def run(self) -> list[Result]:
        progress(f"{self.kind}:")
        for producers in (1, 4, 16):
            await self.awaited(producers)
        await self.unsynced()
        await self.large_batches()
        await self.removes()
        for count in self.scale.recovery:
            await self.recovery(count)
        return self.results

    async def _producers(
        self, store: Store, producers: int, total: int, op: Callable[[int], Awaitable[None]]
    ) -> tuple[int, float, list[float]]:
        """`producers` coroutines each awaiting one op at a time until `total` or the deadline."""
        latencies: list[float] = []
        counter = iter(range(total))
        deadline = time.perf_counter() + self.scale.deadline

        async def producer() -> None:
            for n in counter:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                await op(n)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        return len(latencies), time.perf_counter() - started, latencies

    async def awaited(self, producers: int) -> None:
        store, _ = await self._store(sync="always")
        try:
            def send(n: int) -> Awaitable[None]:
                return store.enqueue("/queue/bench", make_message(n, KIB))

            done, seconds, lat = await self._producers(store, producers, self.scale.awaited, send)
        finally:
            await store.close()
        phase = f"awaited 1KiB x{producers} producers"
        self._record(Result(self.kind, phase, done, seconds, done / seconds, *percentiles(lat)))

    async def unsynced(self) -> None:
        store, _ = await self._store(sync="never")
        try:
            total = self.scale.unsynced
            started = time.perf_counter()
            await asyncio.wait_for(
                asyncio.gather(*(store.enqueue("/queue/bench", make_message(n, KIB)) for n in range(total))),
                self.scale.deadline * 4,
            )
            seconds = time.perf_counter() - started
        finally:
            await store.close()
        self._record(Result(self.kind, "sync=never 1KiB concurrent", total, seconds, total / seconds))

    async def large_batches(self) -> None:
        store, _ = await self._store(sync="always")
        try:

            async def batch(n: int) -> None:
                ops = [AddMessage("/queue/bench", make_message(n * 100 + i, KIB)) for i in range(100)]
                await store.write(ops)

            done, seconds, lat = await self._producers(store, 4, self.scale.batches, batch)
        finally:
            await store.close()
        count = done * 100
        phase = "sync=always batches of 100"
        self._record(Result(self.kind, phase, count, seconds, count / seconds, *percentiles(lat)))

    async def removes(self) -> None:
        store, _ = await self._store(sync="always")
        try:
            total = self.scale.removes
            await fill(store, total, KIB)
            done, seconds, lat = await self._producers(
                store, 16, total, lambda n: store.write([RemoveMessage("/queue/bench", f"bench-{n}")])
            )
        finally:
            await store.close()
        phase = "remove (ack) x16 consumers"
        self._record(Result(self.kind, phase, done, seconds, done / seconds, *percentiles(lat)))

    async def recovery(self, count: int) -> None:
        store, data_dir = await self._store(sync="never")
        try:
            progress(f"  filling {count} messages of {RECOVERY_BODY} B ...")
            await fill(store, count, RECOVERY_BODY)
        finally:
            await store.close()
        disk = du(data_dir)
        reopened = create_store(data_dir, StoreSettings.model_validate({"type": self.kind}))
        started = time.perf_counter()
        recovered = await reopened.open()
        seconds = time.perf_counter() - started
        got = sum(recovered.depth(queue) for queue in recovered.queues)  # heads hold a window only
        del recovered
        await reopened.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        if got != count:
            raise AssertionError(f"{self.kind}: recovered {got} of {count} messages")
        phase = f"recovery of {count} msgs"
        self._record(Result(self.kind, phase, count, seconds, count / seconds, extra={"disk_mb": disk}))


async def fill(store: Store, count: int, size: int) -> None:
    """Store `count` messages in batches of 1000 (fast, not what is measured)."""
    for start in range(0, count, 1000):
        stop = min(count, start + 1000)
        await store.write([AddMessage("/queue/bench", make_message(n, size)) for n in range(start, stop)])
        if start and start % 100_000 == 0:
            progress(f"    {start} ...")


def percentiles(latencies: list[float]) -> tuple[float | None, float | None]:
    if len(latencies) < 2:
        return None, None
    cuts = statistics.quantiles(latencies, n=100)
    return round(cuts[49] * 1000, 3), round(cuts[98] * 1000, 3)


def du(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return round(total / (1024 * 1024), 1)


def machine(root: Path) -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "data_dir": str(root),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def table(results: list[Result]) -> str:
    lines = ["store      phase                               msgs  seconds     msgs/s   p50 ms   p99 ms"]
    for r in results:
        p50 = "" if r.p50_ms is None else f"{r.p50_ms:.2f}"
        p99 = "" if r.p99_ms is None else f"{r.p99_ms:.2f}"
        lines.append(
            f"{r.store:<10} {r.phase:<30} {r.messages:>9} {r.seconds:>8.2f} {r.rate:>10.0f} {p50:>8} {p99:>8}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stores", description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated store names")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="small counts, recovery of 10k only")
    parser.add_argument("--dir", type=Path, help="where to put the data (default: the system temp dir)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.stores.split(",") if s not in STORES]
    if unknown:
        parser.error(f"unknown store(s): {', '.join(unknown)} (choose from {', '.join(STORES)})")
    return args


async def run_all(kinds: list[str], root: Path, scale: Scale) -> list[Result]:
    results: list[Result] = []
    for kind in kinds:
        results += await Bench(kind, root, scale).run()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="batonmq-bench-", dir=args.dir))
    info = machine(root)
    progress(f"machine: {info['platform']}, {info['cores']} cores, python {info['python']}; data in {root}")
    try:
        import uvloop  # the broker runs on uvloop, so measure the stores on it too

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            results = runner.run(run_all(args.stores.split(","), root, QUICK if args.quick else FULL))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mode = "quick" if args.quick else "full"
    print(f"# {info['platform']}, {info['cores']} cores, python {info['python']}, {mode}")
    print(table(results))
    if args.json:
        report = {"machine": info, "quick": args.quick, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
