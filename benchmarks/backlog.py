"""A persistent backlog (issue 12, point 7): produce N with no consumer, kill -9, recover, take over, drain.

    python -m benchmarks.backlog [--quick | --long] [--count N]... [--store S]... [--stores all]
        [--producers P] [--ack auto|client-individual] [--prefetch K] [--cursor-window SIZE]
        [--json FILE] [--check]

For each store and N (100k and 1M; --long adds 10M; --quick runs 20k and 100k), in a fresh temporary
data directory, with the brokers' default settings (plus --cursor-window when given):
  1. broker a starts on 127.0.0.2; P receipted producers store N persistent 1 KiB messages in one
     queue nobody consumes: produce rate;
  2. a is killed with SIGKILL and started again: cold recovery is its timeline's lock_taken ->
     store_recovered (what batonmq_recovery_seconds reports); lock_to_bound_s adds the engine's load;
  3. broker b starts on 127.0.0.3 on the same directory, as a slave (a hot standby where the store
     has a follower: journal, appendlog);
     once ready, a is killed with SIGKILL: the time from the kill to the first RECEIPT from b;
  4. one consumer drains the whole backlog from b: drain rate, and every receipted message exactly
     once, in each producer's order.
Every broker's RSS is sampled from /proc throughout: the peak over all phases, and after the drain.
Then, on b, backlogs that fit in the memory window are produced and drained a few times: the drain
rate the drain from disk is compared with (same broker, same consumer, minutes apart at most).
Missed goals are reported, not hidden; the exit status is 0 unless --check is given and one was.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import backlog_goals as goals_mod
from benchmarks.backlog_clients import Drained, drain, produce_backlog
from benchmarks.brokers import BrokerProcess, free_port, memory_kib
from benchmarks.fairness import RSS_INTERVAL, RssSampler
from benchmarks.fairness_goals import peak_rss_mib
from benchmarks.hotpath import cpu_seconds
from benchmarks.report import machine_info, machine_line, progress, write_json
from benchmarks.standby import READY, kill_to_receipt, log_since, phases
from stores.registry import can_follow
from transports import eventloop

STORES = ("journal", "leveldb", "appendlog")
HOSTS = ("127.0.0.2", "127.0.0.3")
QUEUE = "/queue/backlog.check"
WINDOW_QUEUE = "/queue/backlog.window"
DEFAULT_WINDOW = 4 * 1024 * 1024  # store.cursor_window's default (docs: paging design)
WINDOW_SHARE = 1280  # bytes a 1 KiB message is reckoned to take in the window, headers included
SETTLE = 2.0  # seconds after the drain before the RSS is read again
COUNTS, QUICK_COUNTS, LONG_COUNT = (100_000, 1_000_000), (20_000, 100_000), 10_000_000
MAX_COUNT = 20_000_000
INTERRUPTED = 130  # the exit status after Ctrl-C or SIGTERM, as a shell gives


@dataclass(frozen=True)
class Plan:
    stores: tuple[str, ...]
    counts: tuple[int, ...]
    producers: int
    size: int
    ack: str
    prefetch: int
    cursor_window: str | None  # passed on to `batonmq start` only when given

    def broker_args(self) -> tuple[str, ...]:
        return ("--cursor-window", self.cursor_window) if self.cursor_window else ()


def time_limit(count: int) -> float:
    """The bound on one phase (produce, drain, a start) of a backlog of `count` messages."""
    return 120.0 + count / 500


async def wait_until(check: Any, broker: BrokerProcess, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if not broker.alive:
            raise RuntimeError(f"broker {broker.name} exited before {what}:\n{broker.tail(10)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        await asyncio.sleep(0.02)


class Watched:
    """A broker process and a task sampling its RSS as long as the process lives."""

    def __init__(self, broker: BrokerProcess) -> None:
        assert broker.pid is not None
        self.broker, self.sampler = broker, RssSampler(broker.pid)
        self.task = asyncio.ensure_future(self._sample())

    async def _sample(self) -> None:
        while self.broker.alive:
            self.sampler.look()
            await asyncio.sleep(RSS_INTERVAL)

    def peak_mib(self) -> float | None:
        self.sampler.look()
        return peak_rss_mib([self.sampler.max_kib] if self.sampler.samples else [],
                            self.sampler.high_water_kib)

    def now_mib(self) -> float | None:
        found = memory_kib(self.sampler.pid)
        return round(found["VmRSS"] / 1024, 1) if "VmRSS" in found else None

    def stop(self) -> None:
        self.task.cancel()


async def start_master(broker: BrokerProcess, timeout: float) -> Watched:
    broker.start()
    if not await asyncio.to_thread(broker.wait_accepting, timeout):
        raise RuntimeError(f"broker {broker.name} did not start accepting:\n{broker.tail(10)}")
    return Watched(broker)


async def start_slave(broker: BrokerProcess, timeout: float) -> Watched:
    since = time.time()
    broker.start()
    watched = Watched(broker)
    if can_follow(broker.store):  # a slave of a store without a follower waits cold
        await wait_until(lambda: READY in log_since(broker, since), broker, timeout, "its standby was ready")
    else:
        await wait_until(lambda: broker.role == "slave", broker, timeout, "it became a slave")
    await asyncio.sleep(0.5)  # following, not loading
    return watched


async def kill(watched: Watched) -> float | None:
    """SIGKILL, waits for the exit; the peak RSS the process reached."""
    peak = watched.peak_mib()
    watched.stop()
    watched.broker.signal(signal.SIGKILL)
    await asyncio.to_thread(watched.broker.wait_exit, 30.0)
    return peak


def window_size(plan: Plan) -> tuple[int, int]:
    """Messages per in-window backlog (they fit in the cursor window) and rounds (about 20k in all)."""
    window = DEFAULT_WINDOW if plan.cursor_window is None else _bytes(plan.cursor_window)
    count = max(500, min(20_000, int(window * 0.9) // WINDOW_SHARE))
    return count, min(10, math.ceil(20_000 / count))


async def window_rate(plan: Plan, broker: BrokerProcess) -> dict[str, Any]:
    """The drain rate of backlogs that fit in the memory window: on the same broker, right after the
    drain from disk (a shared machine's load changes by the minute), with the same consumer."""
    count, rounds = window_size(plan)
    drained, elapsed = 0, 0.0
    for r in range(rounds):
        label = f"{broker.store} in-window {r + 1}/{rounds}"
        made = await produce_backlog(broker.host, broker.port, WINDOW_QUEUE, count, plan.producers,
                                     plan.size, time_limit(count), label)
        result = await drain(broker.host, broker.port, WINDOW_QUEUE, made.per_producer, plan.ack,
                             plan.prefetch, time_limit(count), "drain")
        if not result.complete_in_order:
            raise RuntimeError(f"in-window drain incomplete: {asdict(result)}")
        drained, elapsed = drained + result.distinct - 1, elapsed + result.elapsed
    rate = round(drained / elapsed, 1) if elapsed > 0 else None
    progress(f"{broker.store}: in-window drain {rounds} x {count:,}: {rate:,} msg/s")
    return {"count": count, "rounds": rounds, "rate": rate}


def _bytes(text: str) -> int:
    from config.units import parse_size

    return int(parse_size(text))


async def run_size(plan: Plan, store: str, count: int) -> dict[str, Any]:
    outcome: dict[str, Any] = {"store": store, "count": count, "error": None}
    with tempfile.TemporaryDirectory(prefix="batonmq-backlog-") as tmp:
        port = free_port(HOSTS)
        a, b = (BrokerProcess(name, host, port, Path(tmp), store, extra=plan.broker_args())
                for name, host in zip("ab", HOSTS, strict=True))
        try:
            outcome.update(await phases_of(plan, a, b, count))
        except (RuntimeError, TimeoutError, OSError) as error:  # the other sizes still run
            outcome["error"] = f"{type(error).__name__}: {error}"
            logs = f"--- a ---\n{a.tail(8)}\n--- b ---\n{b.tail(8)}"
            progress(f"{store} N={count:,}: {outcome['error']}\n{logs}")
        finally:
            await asyncio.to_thread(a.stop)
            await asyncio.to_thread(b.stop)
    return outcome


def cpu_total(broker: BrokerProcess) -> float:
    """The broker's user + system CPU seconds so far (0 if it is gone)."""
    try:
        return sum(cpu_seconds(broker.pid)) if broker.pid is not None else 0.0
    except (OSError, ValueError, IndexError):
        return 0.0


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cores(broker: BrokerProcess, since: tuple[float, float], elapsed: float) -> dict[str, float | None]:
    """CPU cores the broker and these clients used over a phase (`since`: both CPU times before it):
    a client near 1 core while the broker is well under is the client's limit, not the broker's."""
    if elapsed <= 0:
        return {"broker_cores": None, "client_cores": None}
    return {"broker_cores": round((cpu_total(broker) - since[0]) / elapsed, 2),
            "client_cores": round((own_cpu() - since[1]) / elapsed, 2)}


async def phases_of(plan: Plan, a: BrokerProcess, b: BrokerProcess, count: int) -> dict[str, Any]:
    limit, store = time_limit(count), a.store
    rss: dict[str, Any] = {}
    first = await start_master(a, limit)
    cpu = cpu_total(a), own_cpu()
    made = await produce_backlog(a.host, a.port, QUEUE, count, plan.producers, plan.size, limit,
                                 f"{store} produce")
    produce_cores = cores(a, cpu, made.elapsed)
    progress(f"{store} N={count:,}: {made.count:,} receipted at {made.rate:,} msg/s {made.errors[:1]}")
    rss["produce_peak_mib"] = await kill(first)
    cold = await cold_restart(a, limit)
    cold_watch = cold.pop("watched")
    slave = await start_slave(b, limit)
    rss["slave_ready_mib"] = slave.now_mib()
    warm = await warm_takeover(cold_watch, b, limit)
    rss["recovered_peak_mib"] = warm.pop("killed_peak_mib")
    # The new master's peak so far (standby and takeover): against drain_peak_mib, its peak over its
    # whole life, this tells whether a peak came from taking over or from the drain.
    rss["took_over_peak_mib"] = slave.peak_mib()
    cpu = cpu_total(b), own_cpu()
    result = await drain(b.host, b.port, QUEUE, made.per_producer, plan.ack, plan.prefetch, limit,
                         f"{store} drain")
    drain_cores = cores(b, cpu, result.elapsed)
    progress(f"{store} N={count:,}: drained {result.distinct:,}/{result.expected:,} at {result.rate:,} msg/s")
    await asyncio.sleep(SETTLE)
    rss["drain_peak_mib"], rss["after_drain_mib"] = slave.peak_mib(), slave.now_mib()
    in_window = await window_rate(plan, b)
    slave.stop()
    peaks = [v for k, v in rss.items() if k != "after_drain_mib" and v is not None]
    rss["peak_mib"] = max(peaks, default=None)
    return {"produce": {**asdict(made), **produce_cores}, "cold": cold, "warm": warm,
            "rss": rss, "drain": {**_drained(result), **drain_cores}, "in_window": in_window,
            "ref_rate": in_window["rate"]}


def _drained(result: Drained) -> dict[str, Any]:
    return {**asdict(result), "missing": result.missing, "complete_in_order": result.complete_in_order}


async def cold_restart(a: BrokerProcess, limit: float) -> dict[str, Any]:
    before, began = len(a.timelines), time.monotonic()
    watched = await start_master(a, limit)
    accepting = time.monotonic() - began
    timeline = await asyncio.to_thread(phases, a, before, 30.0)
    progress(f"{a.store}: cold recovery {timeline['recover_s']} s, accepting {accepting:.2f} s after start")
    return {"recovery_s": timeline["recover_s"], "lock_to_bound_s": timeline["total_s"],
            "start_to_accepting_s": round(accepting, 3), "watched": watched}


async def warm_takeover(master: Watched, b: BrokerProcess, limit: float) -> dict[str, Any]:
    before, since = len(b.timelines), time.time()
    peak = master.peak_mib()
    master.stop()
    seconds, killed_wall = await asyncio.to_thread(kill_to_receipt, master.broker, b, limit)
    await asyncio.to_thread(master.broker.wait_exit, 30.0)
    timeline = await asyncio.to_thread(phases, b, before, 30.0)
    warm = "adopted the warm broker" in log_since(b, since)
    how = "warm" if warm else "cold"
    progress(f"{b.store}: kill -9 -> first receipt on {b.name} {seconds:.3f} s ({how})")
    return {"kill_to_receipt_s": round(seconds, 4), "adopted_warm": warm, "killed_peak_mib": peak,
            "kill_to_lock_s": round(b.timelines[-1].lock_taken - killed_wall, 4), **timeline}


async def run_all(plan: Plan, outcomes: list[dict[str, Any]]) -> None:
    """Every store and N in turn. SIGTERM cancels the run the way Ctrl-C does, so that every broker
    is still stopped (by pid) and every data directory removed on the way out."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    for store in plan.stores:
        for count in plan.counts:
            progress(f"{store} N={count:,}: starting")
            outcomes.append(await run_size(plan, store, count))


def _stores(args: argparse.Namespace) -> tuple[str, ...]:
    chosen = list(args.store or [])
    for part in (args.stores or "").split(","):
        chosen += list(STORES) if part.strip() == "all" else [part.strip()] if part.strip() else []
    unknown = [s for s in chosen if s not in STORES]
    if unknown:
        raise SystemExit(f"unknown store(s) {', '.join(unknown)}: choose from {', '.join(STORES)} or all")
    return tuple(dict.fromkeys(chosen)) or ("journal",)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backlog", description=__doc__.split("\n")[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="N = 20k and 100k")
    sizes.add_argument("--long", action="store_true", help="N = 100k, 1M and 10M")
    sizes.add_argument("--count", type=int, action="append", metavar="N", help="this N (repeatable)")
    parser.add_argument("--store", action="append", choices=STORES, help="repeatable; default journal")
    parser.add_argument("--stores", metavar="all|S,S", help="several stores at once, or all")
    parser.add_argument("--producers", type=int, default=4, help="receipted connections (default 4)")
    parser.add_argument("--size", type=int, default=1024, help="body bytes (default 1024)")
    parser.add_argument("--ack", choices=("auto", "client-individual"), default="client-individual")
    parser.add_argument("--prefetch", type=int, default=1000, help="the consumer's prefetch (default 1000)")
    parser.add_argument("--cursor-window", metavar="SIZE", help="passed to `batonmq start` (default: unset)")
    parser.add_argument("--json", metavar="FILE", help="write the results here too")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal was missed")
    args = parser.parse_args(argv)
    counts = args.count or (QUICK_COUNTS if args.quick else COUNTS + ((LONG_COUNT,) if args.long else ()))
    if any(not 1 <= n <= MAX_COUNT for n in counts) or not 1 <= args.producers <= 64:
        parser.error(f"need 1 <= N <= {MAX_COUNT:,} and 1 <= --producers <= 64")
    if not 1 <= args.size <= 1 << 20 or not 1 <= args.prefetch <= 100_000:
        parser.error("need 1 <= --size <= 1 MiB and 1 <= --prefetch <= 100000")
    args.counts = tuple(counts)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    plan = Plan(_stores(args), args.counts, args.producers, args.size, args.ack, args.prefetch,
                args.cursor_window)
    goals = goals_mod.Goals()
    machine = machine_info()
    progress(machine_line(machine))
    outcomes: list[dict[str, Any]] = []
    interrupted = False
    try:
        eventloop.run(run_all(plan, outcomes))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        progress(f"interrupted: the {len(outcomes)} finished run(s) follow")
    count, rounds = window_size(plan)
    print(machine_line(machine))
    print(f"broker defaults{' + --cursor-window ' + plan.cursor_window if plan.cursor_window else ''}; "
          f"{plan.producers} producers, receipt every 1000; consumer ack {plan.ack}, "
          f"prefetch {plan.prefetch}; "
          f"{plan.size} B persistent messages; in-window reference: "
          f"{rounds} x {count:,} messages, drained after each backlog on the same broker")
    print(goals_mod.table(outcomes, goals))
    for line in goals_mod.verdict_lines(outcomes, goals):
        print(line)
    if args.json:
        write_json(args.json, {"machine": machine, "plan": asdict(plan), "goals": asdict(goals),
                               "results": outcomes,
                               "verdicts": [goals_mod.verdicts(o, goals) for o in outcomes]})
    missed = any(v == goals_mod.MISSED for o in outcomes for v in goals_mod.verdicts(o, goals).values())
    return INTERRUPTED if interrupted else 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
