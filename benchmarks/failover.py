"""Failover time and message safety: kill the master R times while a producer and a consumer run.

    python -m benchmarks.failover [--brokers 3] [--store journal] [--preload 10000] [--rounds 20]
        [--rate 100] [--size 1024] [--signal KILL|TERM] [--lock-acquire-interval S]
        [--lock-keepalive-period S] [--json FILE] [--plot FILE.png]

N brokers run on 127.0.0.2, .3, ... sharing one temporary data directory and one free port, as hosts
sharing a file system would. M persistent messages are preloaded (into a queue nobody consumes, so the
store is that big), then a receipted producer at a steady rate and a client-individual consumer run
through whichever broker is master. Each round kills the master at a random moment and measures, in
ms from the kill: lock_taken, store_recovered, connector_bound (the new master's timeline line),
first_receipt and first_message (the first SEND receipted / MESSAGE received from the new master). The
killed broker is then restarted as a slave. After the last round everything is drained: `lost` counts
receipted messages never consumed and must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from benchmarks.brokers import BrokerProcess, Timeline, free_port
from benchmarks.failover_clients import Consumer, Producer
from benchmarks.failover_report import (
    RoundResult,
    build_document,
    check_delivery,
    matplotlib_available,
    plot,
    render_text,
    since_kill,
)
from benchmarks.link import LinkError, StompLink
from benchmarks.loadgen import Job, WorkerResult, produce, run_loop
from benchmarks.report import machine_info, machine_line, progress, write_json

STORES = ("journal", "leveldb", "appendlog")
QUEUE = "/queue/failover.check"
PRELOAD_QUEUE = "/queue/failover.preload"
# Preloaded messages stay in broker memory: keep each queue under the default 64 MiB destination limit.
PRELOAD_PER_QUEUE = 40_000
POLL = 0.005
START_TIMEOUT = 60.0
DRAIN_QUIET = 10.0  # the final drain ends once nothing new arrived for this long...
DRAIN_LIMIT = 120.0  # ...or after this, whichever is first


async def wait_for(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(POLL)
    return bool(condition())


def current_master(brokers: list[BrokerProcess]) -> BrokerProcess | None:
    """The live broker whose latest role line says master and whose timeline has the highest epoch."""
    masters = [b for b in brokers if b.alive and b.role == "master" and b.latest_timeline() is not None]
    return max(masters, key=lambda b: b.latest_timeline().epoch, default=None)  # type: ignore[union-attr]


def newest_timeline(brokers: list[BrokerProcess], above_epoch: int) -> tuple[BrokerProcess, Timeline] | None:
    found = [(b, t) for b in brokers if (t := b.latest_timeline()) is not None and t.epoch > above_epoch]
    return max(found, key=lambda bt: bt[1].epoch, default=None)


def top_epoch(brokers: list[BrokerProcess]) -> int:
    return max((t.epoch for b in brokers if (t := b.latest_timeline()) is not None), default=0)


class Run:
    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args = args
        self.hosts = [f"127.0.0.{2 + i}" for i in range(args.brokers)]
        self.port = free_port(tuple(self.hosts))
        self.brokers = [
            BrokerProcess(f"b{i + 1}", host, self.port, data_dir, args.store,
                          args.lock_acquire_interval, args.lock_keepalive_period)
            for i, host in enumerate(self.hosts)
        ]
        addresses = [(host, self.port) for host in self.hosts]
        run_id = uuid.uuid4().hex[:12]
        self.producer = Producer(addresses, QUEUE, args.rate, args.size, run_id)
        self.consumer = Consumer(addresses, QUEUE)
        self.rounds: list[RoundResult] = []
        self.rng = random.Random(args.seed)

    async def start_cluster(self) -> BrokerProcess:
        for broker in self.brokers:
            broker.start()
        if not await wait_for(lambda: current_master(self.brokers) is not None, START_TIMEOUT):
            raise RuntimeError("no master within 60 s:\n" + self.logs())
        master = current_master(self.brokers)
        assert master is not None
        progress(f"master is {master.name} on {master.host}:{self.port}")
        return master

    async def preload(self, master: BrokerProcess) -> None:
        """Fill the store; spread over several queues, each under the broker's per-destination limit."""
        total = self.args.preload
        if total <= 0:
            return
        progress(f"preloading {total} persistent messages into {PRELOAD_QUEUE}.* ...")
        began = time.monotonic()
        link = await StompLink.open(master.host, self.port)
        try:
            for index, start in enumerate(range(0, total, PRELOAD_PER_QUEUE)):
                count = min(PRELOAD_PER_QUEUE, total - start)
                job = Job("produce", master.host, self.port, f"{PRELOAD_QUEUE}.{index}", count,
                          size=self.args.size, window=1000, time_limit=60.0 + count / 1000)
                result = WorkerResult("produce")
                await produce(link, job, time.monotonic() + job.time_limit, result)
                if result.count < count:
                    raise RuntimeError(f"preload stored only {result.count} of {count} messages")
            await link.disconnect()
        finally:
            link.abort()
        progress(f"preloaded in {time.monotonic() - began:.1f} s")

    async def one_round(self, number: int) -> RoundResult:
        args = self.args
        ok = await wait_for(lambda: current_master(self.brokers) is not None, args.round_timeout)
        master = current_master(self.brokers)
        if not ok or master is None:
            raise RuntimeError(f"round {number}: no master to kill\n" + self.logs())
        # Kill only once the clients are served by this master, then at a random moment.
        began = time.time()
        served = lambda: self.producer.first_receipt(began, master.host) is not None  # noqa: E731
        await wait_for(served, args.round_timeout)
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        epoch = top_epoch(self.brokers)
        kill_time = time.time()
        master.signal(getattr(signal, f"SIG{args.signal}"))
        result = RoundResult(number, master.name, args.signal, round(kill_time, 6))
        done = await wait_for(lambda: self._observe(result, master, epoch), args.round_timeout)
        result.timed_out = not done
        await self._restart(master)
        return result

    def _observe(self, result: RoundResult, killed: BrokerProcess, epoch: int) -> bool:
        """Fill in what is known so far; True once every phase is."""
        found = newest_timeline([b for b in self.brokers if b is not killed], epoch)
        if found is None:
            return False
        broker, timeline = found
        result.new_master, result.epoch = broker.name, timeline.epoch
        for phase in ("lock_taken", "store_recovered", "connector_bound"):
            setattr(result, phase, since_kill(result.kill_time, getattr(timeline, phase)))
        receipt = self.producer.first_receipt(result.kill_time, broker.host)
        message = self.consumer.first_message(result.kill_time, broker.host)
        result.first_receipt = since_kill(result.kill_time, receipt.at if receipt else None)
        result.first_message = since_kill(result.kill_time, message.at if message else None)
        return result.complete()

    async def _restart(self, broker: BrokerProcess) -> None:
        code = await asyncio.to_thread(broker.wait_exit, 15.0)
        if code is None:  # a graceful stop that hangs: the benchmark must go on
            broker.signal(signal.SIGKILL)
            await asyncio.to_thread(broker.wait_exit, 10.0)
        broker.start()
        if not await wait_for(lambda: broker.role in ("slave", "master"), START_TIMEOUT):
            progress(f"warning: restarted {broker.name} did not report a role:\n{broker.tail(10)}")

    async def drain(self) -> None:
        """Let the consumer run until every receipted message arrived, or nothing new came for a while."""
        receipted = {e.seq for e in self.producer.receipts}
        progress(f"draining: {len(receipted)} receipted messages to account for ...")
        deadline = time.monotonic() + DRAIN_LIMIT
        seen: set[int] = set()
        read, quiet_since = 0, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < DRAIN_QUIET:
            deliveries = self.consumer.deliveries
            if len(deliveries) > read:
                seen.update(e.seq for e in deliveries[read:])
                read, quiet_since = len(deliveries), time.monotonic()
            if receipted <= seen:
                return
            await asyncio.sleep(0.1)
        progress(f"drain ended with {len(receipted - seen)} receipted messages not consumed")

    def logs(self, lines: int = 15) -> str:
        return "\n".join(f"--- {b.name} ({b.host}) ---\n{b.tail(lines)}" for b in self.brokers)

    def stop_all(self) -> None:
        for broker in self.brokers:
            broker.stop()


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, object]:
    bench = Run(args, data_dir)
    stop_producer, stop_consumer = asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        master = await bench.start_cluster()
        await bench.preload(master)
        tasks = [asyncio.ensure_future(bench.producer.run(stop_producer)),
                 asyncio.ensure_future(bench.consumer.run(stop_consumer))]
        for number in range(1, args.rounds + 1):
            result = await bench.one_round(number)
            bench.rounds.append(result)
            progress(_round_line(result))
            for task in tasks:
                if task.done():
                    task.result()  # a client that crashed: report it rather than measure nothing
        stop_producer.set()
        await asyncio.wait_for(tasks[0], 30)
        await bench.drain()
    finally:
        stop_producer.set()
        stop_consumer.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await asyncio.to_thread(bench.stop_all)
    check = check_delivery((e.seq for e in bench.producer.receipts),
                           ((e.seq, e.redelivered) for e in bench.consumer.deliveries), bench.producer.sent)
    config = {**{k: v for k, v in vars(args).items() if k not in ("json", "plot")},
              "hosts": bench.hosts, "port": bench.port, "sent": bench.producer.sent,
              "resends": bench.producer.resends, "producer_connects": bench.producer.connects,
              "consumer_connects": bench.consumer.connects}
    return build_document(bench.rounds, check, machine_info(), config)


def _round_line(r: RoundResult) -> str:
    phases = ", ".join(f"{p} {getattr(r, p)}" for p in ("connector_bound", "first_receipt", "first_message"))
    return (f"round {r.round}: SIG{r.signal} {r.killed} -> {r.new_master} (epoch {r.epoch}): {phases} ms"
            + (" TIMED OUT" if r.timed_out else ""))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", type=int, default=3, choices=range(2, 10), metavar="N")
    parser.add_argument("--store", choices=STORES, default="journal")
    parser.add_argument("--preload", type=int, default=10_000, metavar="M")
    parser.add_argument("--rounds", type=int, default=20, metavar="R")
    parser.add_argument("--rate", type=float, default=100.0, metavar="MSGS_PER_S")
    parser.add_argument("--size", type=int, default=1024, metavar="BYTES")
    parser.add_argument("--signal", choices=("KILL", "TERM"), default="KILL")
    parser.add_argument("--lock-acquire-interval", type=float, metavar="S", help="default: the broker's")
    parser.add_argument("--lock-keepalive-period", type=float, metavar="S", help="default: the broker's")
    parser.add_argument("--round-timeout", type=float, default=30.0, metavar="S")
    parser.add_argument("--seed", type=int, help="for the random kill moments")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--plot", metavar="FILE.png")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.preload < 0 or args.rate <= 0 or not 1 <= args.size <= 1 << 20:
        parser.error("need --rounds >= 1, --preload >= 0, --rate > 0 and 1 <= --size <= 1 MiB")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.plot and not matplotlib_available():
        print("benchmarks.failover: --plot needs matplotlib, which is not installed", file=sys.stderr)
        return 2
    progress(machine_line(machine_info()))
    with tempfile.TemporaryDirectory(prefix="batonmq-failover-") as tmp:
        try:
            document = run_loop(run(args, Path(tmp)))
        except (RuntimeError, TimeoutError, LinkError, OSError) as error:
            print(f"benchmarks.failover: {error}", file=sys.stderr)
            return 1
    print(render_text(document))
    if args.json:
        write_json(args.json, document)
    if args.plot:
        plot(document, args.plot)
    rounds = document["rounds"]
    assert isinstance(rounds, list)
    config = document["config"]
    assert isinstance(config, dict)
    failed = document["lost"] or config["delivery"]["unexpected"] or any(r["timed_out"] for r in rounds)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
