"""A fast STOMP load generator: pipelined asyncio producers and consumers in several OS processes.

Works against any STOMP 1.2 broker (`--url tcp://host:port`, e.g. ActiveMQ) and against our sink.
A producer's `window` says how it waits: 1 = each SEND carries a receipt that is awaited before the
next (a synchronous persistent send); W > 1 = a receipt every W messages, awaited before going on (at
most W in flight); 0 = no receipts but on the last frame. Consumers use ack `auto`, `client` or
`client-individual`. Every run is bounded by a count AND a time limit.

    python -m benchmarks.loadgen --url tcp://127.0.0.1:61613 produce --count 20000 --producers 4
    python -m benchmarks.loadgen --url tcp://127.0.0.1:61613 consume --count 20000 --ack auto
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import queue
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from benchmarks.link import LinkError, SendTemplate, StompLink, latency_ms
from benchmarks.report import percentile
from transports import eventloop
from transports.stomp import Frame
from transports.url import parse_url

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

T = TypeVar("T")

MAX_LATENCY_SAMPLES = 200_000  # per worker; beyond it latencies are subsampled, never unbounded
RECEIPT_TIMEOUT = 30.0
ACK_MODES = ("auto", "client", "client-individual")


@dataclass(frozen=True)
class Job:
    """What one worker process does (picklable: it crosses a spawn boundary)."""

    role: str  # "produce" or "consume"
    host: str
    port: int
    destination: str
    count: int  # per connection
    connections: int = 1
    size: int = 1024
    persistent: bool = True
    window: int = 1
    queues: int = 1  # > 1: SENDs rotate over destination.0 .. destination.(queues-1)
    rate: float = 0.0  # messages per second per connection; 0 = as fast as possible
    ack: str = "auto"
    prefetch: int = 1000
    subscribe_early: bool = False  # subscribe before the start signal (topics), else after it
    time_limit: float = 60.0
    login: str | None = None
    passcode: str | None = None
    tag: str | None = None  # sent as `bench-producer`, so a consumer can check each producer's order


@dataclass
class WorkerResult:
    role: str
    count: int = 0
    started: float = 0.0  # wall clock, so results from different processes compare
    finished: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms: receipt round trips or end-to-end
    errors: list[str] = field(default_factory=list)


def _sample(latencies: list[float], value: float | None) -> None:
    if value is not None and len(latencies) < MAX_LATENCY_SAMPLES:
        latencies.append(value)


async def produce(link: StompLink, job: Job, deadline: float, result: WorkerResult) -> None:
    """Send up to `job.count` messages until `deadline` (monotonic); `result.count` = those receipted."""
    loop = asyncio.get_running_loop()
    sent = 0
    try:
        # One timer for the whole run rather than one per receipt: the bound without the cost.
        async with asyncio.timeout_at(loop.time() + (deadline - time.monotonic()) + RECEIPT_TIMEOUT):
            sent = await _send_loop(link, job, deadline, result)
    except TimeoutError:
        raise LinkError(f"no receipt within {RECEIPT_TIMEOUT} s after the time limit") from None
    if result.count < sent:
        # Stopped by the time limit between receipts: a receipted DISCONNECT covers every earlier frame.
        await link.disconnect(RECEIPT_TIMEOUT)
        if link.disconnected:
            result.count = sent


async def _send_loop(link: StompLink, job: Job, deadline: float, result: WorkerResult) -> int:
    if job.queues > 1:
        names = [f"{job.destination}.{i}" for i in range(job.queues)]
    else:
        names = [job.destination]
    extra = {"bench-producer": job.tag} if job.tag is not None else None
    templates = [SendTemplate(name, job.size, job.persistent, extra) for name in names]
    start = time.monotonic()
    sent = 0
    for seq in range(job.count):
        if time.monotonic() >= deadline:
            break
        if job.rate > 0:
            delay = start + seq / job.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        last = seq == job.count - 1
        wants = job.window == 1 or last or (job.window > 1 and (seq + 1) % job.window == 0)
        receipt = f"r{seq}" if wants else None
        link.write(templates[seq % len(templates)].frame(seq, receipt))
        sent += 1
        if receipt is None:
            await link.drain_if_full()
            continue
        began = time.perf_counter()
        await link.wait_receipt(receipt, None)
        if job.window == 1:
            _sample(result.latencies, (time.perf_counter() - began) * 1000)
        result.count = sent
    return sent


async def subscribe(link: StompLink, job: Job, sub_id: str) -> None:
    headers = {"destination": job.destination, "id": sub_id, "ack": job.ack,
               "activemq.prefetchSize": str(job.prefetch), "receipt": f"sub-{sub_id}"}
    link.send(Frame("SUBSCRIBE", headers))
    await link.wait_receipt(f"sub-{sub_id}", RECEIPT_TIMEOUT)


async def consume(link: StompLink, job: Job, deadline: float, result: WorkerResult) -> None:
    """Receive up to `job.count` messages, acking as the mode requires, until `deadline` (monotonic)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(loop.time() + (deadline - time.monotonic())):
            await _receive_loop(link, job, result)
    except TimeoutError:
        pass  # the time limit: result.count says how far it got


async def _receive_loop(link: StompLink, job: Job, result: WorkerResult) -> None:
    received = 0
    while received < job.count:
        frame = await link.next_frame()
        if frame is None or frame.command == "ERROR":
            raise LinkError(f"consumer got {frame.command if frame else 'connection closed'}"
                            f"{': ' + str(frame.get('message')) if frame else ''}")
        if frame.command != "MESSAGE":
            continue
        received += 1
        _sample(result.latencies, latency_ms(frame))
        if job.ack == "client-individual" or (job.ack == "client" and received % 100 == 0):
            link.ack(frame.get("ack") or frame.get("message-id") or "")
            await link.drain_if_full()
        result.count = received


async def run_connection(job: Job, go: asyncio.Event, ready: list[StompLink], result: WorkerResult) -> None:
    link = await StompLink.open(job.host, job.port, job.login, job.passcode)
    try:
        if job.role == "consume" and job.subscribe_early:
            await subscribe(link, job, "0")
        ready.append(link)
        await go.wait()
        deadline = time.monotonic() + job.time_limit
        if job.role == "consume" and not job.subscribe_early:
            await subscribe(link, job, "0")
        if job.role == "produce":
            await produce(link, job, deadline, result)
        else:
            await consume(link, job, deadline, result)
        if not link.disconnected:
            await link.disconnect()
    finally:
        link.abort()


async def run_job(job: Job, wait_go: Callable[[], None]) -> WorkerResult:
    """All of a job's connections in this process; `wait_go` blocks until every worker is ready."""
    go = asyncio.Event()
    ready: list[StompLink] = []
    parts = [WorkerResult(job.role) for _ in range(job.connections)]
    tasks = [asyncio.ensure_future(run_connection(job, go, ready, part)) for part in parts]
    try:
        while len(ready) < job.connections:
            failed = [t for t in tasks if t.done()]
            if failed:
                await failed[0]  # raises its error
            await asyncio.sleep(0.005)
        await asyncio.get_running_loop().run_in_executor(None, wait_go)
        started = time.time()
        go.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
    total = WorkerResult(job.role, started=started, finished=time.time())
    for part, outcome in zip(parts, outcomes, strict=True):
        total.count += part.count
        total.latencies.extend(part.latencies[: MAX_LATENCY_SAMPLES - len(total.latencies)])
        if isinstance(outcome, BaseException):
            total.errors.append(f"{type(outcome).__name__}: {outcome}")
    return total


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop, as the brokers do, when it is installed."""
    return eventloop.run(coro)


def _worker(job: Job, ready: Queue[str], go: Event, results: Queue[dict[str, Any]]) -> None:
    def wait_go() -> None:
        ready.put("ready")
        go.wait(job.time_limit + 60)

    try:
        results.put(asdict(run_loop(run_job(job, wait_go))))
    except BaseException as error:  # reported to the parent, which decides
        ready.put("failed")
        results.put(asdict(WorkerResult(job.role, errors=[f"{type(error).__name__}: {error}"])))


@dataclass
class RoleSummary:
    count: int
    elapsed: float
    rate: float
    latency_p50: float | None
    latency_p99: float | None
    errors: list[str]


def run_jobs(jobs: list[Job], ready_timeout: float = 60.0) -> dict[str, RoleSummary]:
    """Run each job in its own spawned process, start them together, and summarise per role."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(job, ready, go, results), daemon=True) for job in jobs]
    for proc in procs:
        proc.start()
    outcomes: list[WorkerResult] = []
    try:
        for _ in jobs:
            if ready.get(timeout=ready_timeout) == "failed":
                break
        go.set()
        limit = max(job.time_limit for job in jobs) + 30
        for _ in jobs:
            outcomes.append(WorkerResult(**results.get(timeout=limit)))
    except queue.Empty:
        outcomes.append(WorkerResult("produce", errors=["a worker did not report in time"]))
    finally:
        go.set()
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for q in (ready, results):
            q.close()
            q.join_thread()
    return summarize_roles(outcomes)


def summarize_roles(outcomes: list[WorkerResult]) -> dict[str, RoleSummary]:
    summaries: dict[str, RoleSummary] = {}
    for role in ("produce", "consume"):
        mine = [o for o in outcomes if o.role == role]
        if not mine:
            continue
        count = sum(o.count for o in mine)
        timed = [o for o in mine if o.started and o.finished]
        elapsed = max(o.finished for o in timed) - min(o.started for o in timed) if timed else 0.0
        latencies = [x for o in mine for x in o.latencies]
        summaries[role] = RoleSummary(
            count=count,
            elapsed=round(elapsed, 4),
            rate=round(count / elapsed, 1) if elapsed > 0 else 0.0,
            latency_p50=_r(percentile(latencies, 50)),
            latency_p99=_r(percentile(latencies, 99)),
            errors=[e for o in mine for e in o.errors],
        )
    return summaries


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def spread(job: Job, total_connections: int, processes: int) -> list[Job]:
    """`total_connections` connections of `job` over at most `processes` processes, as evenly as possible."""
    processes = max(1, min(processes, total_connections))
    base, extra = divmod(total_connections, processes)
    return [replace(job, connections=base + (1 if i < extra else 0)) for i in range(processes)]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="tcp://host:port of any STOMP broker")
    parser.add_argument("--login")
    parser.add_argument("--passcode")
    parser.add_argument("--destination", default="/queue/bench.loadgen")
    parser.add_argument("--count", type=int, default=10_000, help="messages per connection")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds, a bound beside --count")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", help="also write the summary here")
    sub = parser.add_subparsers(dest="mode", required=True)
    prod = sub.add_parser("produce")
    prod.add_argument("--producers", type=int, default=1)
    prod.add_argument("--size", type=int, default=1024)
    prod.add_argument("--window", type=int, default=1, help="1 = await each receipt; 0 = only a final one")
    prod.add_argument("--rate", type=float, default=0.0, help="msg/s per producer; 0 = flat out")
    prod.add_argument("--non-persistent", action="store_true")
    cons = sub.add_parser("consume")
    cons.add_argument("--consumers", type=int, default=1)
    cons.add_argument("--ack", choices=ACK_MODES, default="auto")
    cons.add_argument("--prefetch", type=int, default=1000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    host, port = parse_url(args.url).brokers[0]
    common = Job(role="produce" if args.mode == "produce" else "consume", host=host, port=port,
                 destination=args.destination, count=args.count, time_limit=args.time_limit,
                 login=args.login, passcode=args.passcode)
    if args.mode == "produce":
        job = replace(common, size=args.size, window=args.window, rate=args.rate,
                      persistent=not args.non_persistent)
        jobs = spread(job, args.producers, args.processes)
    else:
        job = replace(common, ack=args.ack, prefetch=args.prefetch)
        jobs = spread(job, args.consumers, args.processes)
    summaries = run_jobs(jobs)
    document = {role: asdict(summary) for role, summary in summaries.items()}
    print(json.dumps(document, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
    return 1 if any(s.errors for s in summaries.values()) else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
