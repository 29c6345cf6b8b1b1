"""End-to-end throughput and latency through a STOMP broker, beside the load generator's own ceiling.

    python -m benchmarks.e2e [--url tcp://HOST:PORT] [--store journal] [--json FILE] [--quick]

Without --url a BatonMQ broker is started here (subprocess, temporary data directory, free port). Each
scenario runs against the broker and then against a sink that stores nothing (benchmarks/sink.py),
whose figure is the client's ceiling: a broker figure near it means the client was the bottleneck.
Every scenario is bounded by a message count and a time limit. Results: a table on stdout, progress on
stderr, optionally JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from benchmarks.brokers import BrokerProcess, free_port
from benchmarks.link import StompLink
from benchmarks.loadgen import Job, RoleSummary, run_jobs, spread
from benchmarks.report import format_number, machine_info, machine_line, progress, render_table, write_json
from transports.url import parse_url

STORES = ("journal", "leveldb", "appendlog")
CLIENT_PROCESSES = 4  # at most this many client processes per role: several, yet few enough for 2 cores
# Unconsumed messages per destination: a broker with a per-destination limit (ActiveMQ's memoryLimit,
# BatonMQ's destination_memory_limit) may block or refuse past it, so send scenarios spread over queues.
MAX_QUEUED = 40_000


@dataclass(frozen=True)
class Target:
    label: str
    host: str
    port: int
    sink: bool = False  # a sink floods queue subscribers itself: nothing to preload
    login: str | None = None
    passcode: str | None = None


@dataclass(frozen=True)
class Sizes:
    receipted: int  # messages per producer, 1 producer
    async_count: int
    consume: int
    fanout: int
    latency_seconds: float
    time_limit: float


QUICK = Sizes(receipted=2000, async_count=20_000, consume=20_000, fanout=2000, latency_seconds=3,
              time_limit=8)
FULL = Sizes(receipted=20_000, async_count=100_000, consume=50_000, fanout=20_000, latency_seconds=10,
             time_limit=30)

_names = itertools.count(1)


def destination(kind: str, key: str) -> str:
    return f"/{kind}/bench.{key}.{os.getpid()}.{next(_names)}"


def _job(target: Target, role: str, dest: str, count: int, sizes: Sizes, **kw: Any) -> Job:
    job = Job(role=role, host=target.host, port=target.port, destination=dest, count=count,
              time_limit=sizes.time_limit, login=target.login, passcode=target.passcode)
    return replace(job, **kw)


def queues_for(messages: int) -> int:
    """Queues to spread `messages` unconsumed messages over, so that none exceeds MAX_QUEUED."""
    return max(1, -(-messages // MAX_QUEUED))


def send_receipted(producers: int) -> Callable[[Target, Sizes], dict[str, RoleSummary]]:
    def run(target: Target, sizes: Sizes) -> dict[str, RoleSummary]:
        per_producer = max(100, sizes.receipted * 4 // (producers + 3))  # similar total work per scenario
        job = _job(target, "produce", destination("queue", f"receipted{producers}"), per_producer, sizes,
                   queues=queues_for(per_producer * producers))
        return run_jobs(spread(job, producers, CLIENT_PROCESSES))
    return run


def send_async(target: Target, sizes: Sizes) -> dict[str, RoleSummary]:
    job = _job(target, "produce", destination("queue", "async"), sizes.async_count, sizes, window=0,
               queues=queues_for(sizes.async_count))
    return run_jobs([job])


def consume(ack: str) -> Callable[[Target, Sizes], dict[str, RoleSummary]]:
    def run(target: Target, sizes: Sizes) -> dict[str, RoleSummary]:
        dest = destination("queue", f"consume-{ack}")
        if not target.sink:
            preload = _job(target, "produce", dest, sizes.consume, sizes, window=0, time_limit=120.0)
            loaded = run_jobs([preload])["produce"]
            if loaded.errors or loaded.count < sizes.consume:
                raise RuntimeError(f"preload stored {loaded.count} of {sizes.consume}: {loaded.errors}")
        return run_jobs([_job(target, "consume", dest, sizes.consume, sizes, ack=ack)])
    return run


def fanout(subscribers: int) -> Callable[[Target, Sizes], dict[str, RoleSummary]]:
    def run(target: Target, sizes: Sizes) -> dict[str, RoleSummary]:
        dest = destination("topic", "fanout")
        consumer = _job(target, "consume", dest, sizes.fanout, sizes, subscribe_early=True)
        # Receipts every 100 messages keep the producer from outrunning the subscribers without bound.
        producer = _job(target, "produce", dest, sizes.fanout, sizes, window=100, persistent=False)
        return run_jobs([*spread(consumer, subscribers, 2), producer])
    return run


def latency(rate: float) -> Callable[[Target, Sizes], dict[str, RoleSummary]]:
    def run(target: Target, sizes: Sizes) -> dict[str, RoleSummary]:
        dest = destination("queue", "latency")
        count = int(rate * sizes.latency_seconds)
        consumer = _job(target, "consume", dest, count, sizes, subscribe_early=True)
        producer = _job(target, "produce", dest, count, sizes, rate=rate)
        return run_jobs([consumer, producer])
    return run


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    role: str  # whose rate and latency the table shows
    anchor: str  # ActiveMQ 5.17.2, from /work/shared/anchors.md
    goal: str
    run: Callable[[Target, Sizes], dict[str, RoleSummary]]
    latency: bool = True  # False where the latency is only time spent queued (consuming a backlog)


SCENARIOS = (
    Scenario("receipted-1", "persistent send, receipt each, 1 producer", "produce", "1,320", ">= 2,600",
             send_receipted(1)),
    Scenario("receipted-4", "persistent send, receipt each, 4 producers", "produce", "2,400", "-",
             send_receipted(4)),
    Scenario("receipted-16", "persistent send, receipt each, 16 producers", "produce", "-", ">= 15,000",
             send_receipted(16)),
    Scenario("async-1", "persistent send, no receipts + final, 1 producer", "produce", "15,200", ">= 30,000",
             send_async, latency=False),
    Scenario("consume-auto", "consume queued, ack:auto", "consume", "12,700", ">= 25,000", consume("auto"),
             latency=False),
    Scenario("consume-client-individual", "consume queued, ack:client-individual", "consume", "8,300", "-",
             consume("client-individual"), latency=False),
    Scenario("fanout-10", "topic fan-out, 10 subscribers (deliveries/s)", "consume", "-", "-", fanout(10)),
    Scenario("latency-100", "end-to-end latency at 100 msg/s (persistent)", "consume",
             "p50 1.3 / p99 3.7 ms", "p99 <= 2 ms", latency(100.0)),
)


async def server_name(target: Target) -> str:
    """The CONNECTED frame's `server` header (e.g. ActiveMQ/5.17.2), to label an external broker."""
    link = await StompLink.open(target.host, target.port, target.login, target.passcode)
    try:
        return link.server or "unnamed server"
    finally:
        await link.disconnect()


class Watched(Protocol):
    """A broker process a scenario checks before it runs (BatonMQ's BrokerProcess, ActiveMQ's)."""

    @property
    def alive(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    def tail(self, count: int = 30) -> str: ...


# The brokers started here, so that a scenario can tell "broker died" from "broker refused".
_OWN_BROKERS: list[Watched] = []


@contextlib.contextmanager
def watched(broker: Watched) -> Iterator[None]:
    _OWN_BROKERS.append(broker)
    try:
        yield
    finally:
        _OWN_BROKERS.remove(broker)


@contextlib.contextmanager
def own_broker(store: str) -> Iterator[Target]:
    with tempfile.TemporaryDirectory(prefix="batonmq-bench-") as tmp:
        port = free_port(("127.0.0.1",))
        broker = BrokerProcess("bench", "127.0.0.1", port, Path(tmp), store).start()
        try:
            if not broker.wait_accepting(60):
                raise RuntimeError(f"the broker did not start accepting within 60 s:\n{broker.tail()}")
            with watched(broker):
                yield Target(f"BatonMQ ({store})", "127.0.0.1", port)
        finally:
            broker.stop()


def broker_died() -> str | None:
    for broker in _OWN_BROKERS:
        if not broker.alive:
            return f"the broker exited (code {broker.returncode}); its last lines:\n{broker.tail(20)}"
    return None


@contextlib.contextmanager
def sink(flood: bool) -> Iterator[Target]:
    cmd = [sys.executable, "-m", "benchmarks.sink", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen([*cmd, *(["--flood"] if flood else [])], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()  # "listening HOST PORT"
        if len(words) != 3:
            raise RuntimeError("the sink did not start")
        yield Target("sink", words[1], int(words[2]), sink=True)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def run_one(scenario: Scenario, target: Target, sizes: Sizes) -> dict[str, Any]:
    if not target.sink and (death := broker_died()) is not None:
        progress(f"{scenario.key}: skipped: {death}")
        return {"error": death.split(";")[0]}
    progress(f"{scenario.key}: {target.label} ...")
    try:
        summaries = scenario.run(target, sizes)
    except Exception as error:  # one broken scenario must not hide the others' figures
        progress(f"{scenario.key}: {target.label} failed: {error}")
        return {"error": str(error)}
    shown = summaries.get(scenario.role)
    if shown is None:
        return {"error": "no result"}
    progress(f"{scenario.key}: {target.label}: {shown.count} msgs in {shown.elapsed:.2f} s = "
             f"{shown.rate:,.0f} msg/s" + (f"; errors: {shown.errors[:3]}" if shown.errors else ""))
    return {role: asdict(s) for role, s in summaries.items()}


def table(results: list[dict[str, Any]], broker_label: str) -> str:
    rows = []
    for result in results:
        scenario = next(s for s in SCENARIOS if s.key == result["key"])
        mine, ceiling = result["broker"], result["ceiling"]
        shown = mine.get(scenario.role, {}) if isinstance(mine, dict) else {}
        top = ceiling.get(scenario.role, {}) if isinstance(ceiling, dict) else {}
        failed = "error" in mine or shown.get("errors")
        rows.append([
            scenario.title,
            "FAILED" if failed and not shown.get("count") else format_number(shown.get("rate")),
            *(format_number(shown.get(key), 2) if scenario.latency else "-"
              for key in ("latency_p50", "latency_p99")),
            format_number(top.get("rate")),
            format_number(top.get("latency_p99"), 2) if scenario.latency else "-",
            scenario.anchor, scenario.goal,
        ])
    # p50/p99: receipt round trip for receipted sends, end-to-end (bench-ts header) for deliveries.
    headers = ["scenario (1 KiB)", f"{broker_label} msg/s", "p50 ms", "p99 ms", "client ceiling (sink) msg/s",
               "sink p99 ms", "ActiveMQ 5.17 anchor", "goal"]
    return render_table(headers, rows)


def ceiling_target(scenario: Scenario, echo: Target, flood: Target) -> Target:
    """The sink that measures the client's ceiling: consumers need one that floods them."""
    return flood if scenario.key.startswith("consume") else echo


def run_suite(target: Target, sizes: Sizes, selected: list[Scenario]) -> list[dict[str, Any]]:
    results = []
    with sink(flood=False) as echo, sink(flood=True) as flood:
        for scenario in selected:
            results.append({"key": scenario.key, "title": scenario.title, "anchor": scenario.anchor,
                            "goal": scenario.goal, "broker": run_one(scenario, target, sizes),
                            "ceiling": run_one(scenario, ceiling_target(scenario, echo, flood), sizes)})
    return results


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running STOMP broker (e.g. ActiveMQ); default: start BatonMQ")
    parser.add_argument("--login")
    parser.add_argument("--passcode")
    parser.add_argument("--store", choices=STORES, default="journal")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--quick", action="store_true", help="small counts and short limits")
    parser.add_argument("--only", action="append", choices=[s.key for s in SCENARIOS],
                        help="run only this scenario (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    sizes = QUICK if args.quick else FULL
    selected = [s for s in SCENARIOS if not args.only or s.key in args.only]
    machine = machine_info()
    progress(machine_line(machine))
    if args.url:
        host, port = parse_url(args.url).brokers[0]
        target = Target(args.url, host, port, login=args.login, passcode=args.passcode)
        server = asyncio.run(server_name(target))
        context: contextlib.AbstractContextManager[Target] = contextlib.nullcontext(
            replace(target, label=f"{server} at {args.url}"))
    else:
        context = own_broker(args.store)
    with context as target:
        results = run_suite(target, sizes, selected)
    label = "broker" if args.url else target.label
    print(machine_line(machine))
    print(f"broker: {target.label}; {'quick' if args.quick else 'full'} run; client: benchmarks.loadgen")
    print(table(results, label))
    if args.json:
        write_json(args.json, {"machine": machine, "target": asdict(replace(target, passcode=None)),
                               "sizes": asdict(sizes), "results": results})
    failed = any("error" in r["broker"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
