"""The fairness benchmark's hostile loads (issue 11), each run in its own spawned process.

A load is an async function `(target, params, deadline, report)`: it works on the broker until
`deadline` (monotonic) and notes in `report` what it did, so that a load cut off by its deadline still
says how far it got. A separate process keeps the load's own CPU work from delaying the victim's
client. Every load is bounded by counts and by its deadline, and only ever connects to loopback.

The loads that are about raw connections and unfinished frames live in benchmarks/hostile_frames.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import multiprocessing
import queue
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks import hostile_payloads as payloads
from benchmarks.link import LinkError, StompLink
from benchmarks.loadgen import Job, WorkerResult, consume, produce, subscribe
from transports.stomp import Frame

CHECK_RESERVE = 30.0  # seconds past the deadline for a load's final check and its cleanup
LINK_TIMEOUT = 5.0
LIKE_HEADER = "fairpad"


@dataclass
class Report:
    """What a load did: counts and notes, pass/fail checks the goal includes, and its own errors."""

    notes: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, key: str, amount: float = 1) -> None:
        self.notes[key] = self.notes.get(key, 0) + amount


Target = tuple[str, int]
Load = Callable[[Target, dict[str, Any], float, Report], Awaitable[None]]


async def hold(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


@contextlib.asynccontextmanager
async def until(deadline: float) -> AsyncIterator[None]:
    """Run the body until `deadline` (monotonic) at most; being cut off there is the normal end."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(loop.time() + (deadline - time.monotonic())):
            yield


MEMORY_REFUSAL = b"message:memory limit reached ("  # the ERROR a client refused for memory gets
REFUSED = "ERRORs naming a memory limit"


async def discard(reader: asyncio.StreamReader, report: Report, key: str) -> None:
    """Read and drop everything the broker sends on a connection, counting the bytes and the ERRORs
    that refuse it for memory (docs/memory.md)."""
    tail = b""
    with contextlib.suppress(OSError):
        while data := await reader.read(1 << 16):
            report.add(key, len(data))
            seen = tail + data
            if MEMORY_REFUSAL in seen:
                report.add(REFUSED)
                limit = seen[seen.index(MEMORY_REFUSAL) + len(MEMORY_REFUSAL):].split(b")", 1)[0]
                report.notes["limit named"] = limit.decode(errors="replace")[:80]
                seen = b""
            tail = seen[-len(MEMORY_REFUSAL):]


async def open_link(target: Target, report: Report, links: list[StompLink]) -> StompLink:
    link = await StompLink.open(*target, timeout=LINK_TIMEOUT)
    links.append(link)
    return link


async def flood_producer(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(a) `batonmq produce --count N --size 1024 --persistent`, no consumer; the CLI as a user runs it."""
    host, port = target
    cmd = [sys.executable, "-m", "broker", "produce", "--url", f"tcp://{host}:{port}", "--destination",
           "/queue/fair.flood", "--count", str(p["count"]), "--size", "1024", "--persistent", "--json"]
    report.checks["producer completed"] = False
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:  # cut off by the deadline: stop it by its pid
            proc.kill()
            await proc.wait()
            report.errors.append(f"the producer did not finish {p['count']} messages in time")
    with contextlib.suppress(ValueError):
        summary = json.loads(out.decode().strip().splitlines()[-1])
        report.notes.update({k: summary.get(k) for k in ("receipted", "elapsed", "rate", "error")})
        report.checks["producer completed"] = bool(summary.get("ok"))


async def like_stall(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(b) a subscriber with `LIKE '%aaa...ab'`, then SENDs whose header is 8,000 'a's."""
    links: list[StompLink] = []
    try:
        sub = await open_link(target, report, links)
        sub.send(Frame("SUBSCRIBE", {"destination": "/queue/fair.like", "id": "0", "receipt": "sub",
                                     "selector": payloads.like_selector(LIKE_HEADER)}))
        try:
            await sub.wait_receipt("sub", LINK_TIMEOUT * 2)
            report.notes["selector"] = "accepted"
        except LinkError as error:
            report.notes["selector"] = f"refused: {error}"
        sender = await open_link(target, report, links)
        async with until(deadline):
            await _long_header_sends(sender, p, report)
        await hold(deadline)
    finally:
        for link in links:
            link.abort()


async def _long_header_sends(sender: StompLink, p: dict[str, Any], report: Report) -> None:
    value = payloads.long_header_value(p["header_length"])
    for seq in range(p["sends"]):
        began = time.monotonic()
        sender.send(Frame("SEND", {"destination": "/queue/fair.like", LIKE_HEADER: value,
                                   "receipt": f"s{seq}"}, b"like"))
        await sender.wait_receipt(f"s{seq}", None)
        report.add("sends receipted")
        slowest = max(report.notes.get("slowest own receipt s", 0.0), time.monotonic() - began)
        report.notes["slowest own receipt s"] = round(slowest, 3)


async def topic_fanout(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(c) one connection with 999 subscriptions on a topic; another connection publishes to it."""
    links: list[StompLink] = []
    reader: asyncio.Task[None] | None = None
    try:
        sub = await open_link(target, report, links)
        for i in range(p["subscriptions"]):
            headers = {"destination": "/topic/fair.fan", "id": f"s{i}"}
            if i == p["subscriptions"] - 1:
                headers["receipt"] = "subs"
            sub.send(Frame("SUBSCRIBE", headers))
        await sub.wait_receipt("subs", None)
        report.notes["subscriptions"] = p["subscriptions"]
        reader = asyncio.ensure_future(discard(sub.reader, report, "bytes delivered"))
        pub = await open_link(target, report, links)
        job = Job("produce", *target, "/topic/fair.fan", count=p["messages"], size=p["size"],
                  persistent=False, window=50, rate=p["rate"])
        result = WorkerResult("produce")
        try:
            async with until(deadline):
                await produce(pub, job, deadline, result)
        finally:
            report.notes["published (receipted)"] = result.count
        await hold(deadline)
    finally:
        if reader is not None:
            reader.cancel()
        for link in links:
            link.abort()


async def backlog_drain(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(d) one ack:auto consumer draining the backlog that the scenario preloaded."""
    links: list[StompLink] = []
    try:
        link = await open_link(target, report, links)
        job = Job("consume", *target, p["destination"], count=p["backlog"], ack="auto")
        await subscribe(link, job, "0")
        result = WorkerResult("consume")
        try:
            await consume(link, job, deadline, result)
        finally:
            report.notes["drained"] = result.count
        await hold(deadline)
    finally:
        for link in links:
            link.abort()


async def deep_selectors(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(f) subscribers on the victim's own queue whose selectors overflow a recursive evaluator."""
    links: list[StompLink] = []
    outcomes: dict[str, str] = {}
    report.notes["selectors"] = outcomes
    try:
        async with until(deadline):
            for i, (label, selector) in enumerate(payloads.deep_selectors()):
                link = await open_link(target, report, links)
                link.send(Frame("SUBSCRIBE", {"destination": p["destination"], "id": f"d{i}",
                                              "selector": selector, "receipt": f"d{i}"}))
                try:
                    await link.wait_receipt(f"d{i}", LINK_TIMEOUT * 2)
                    outcomes[label] = "accepted"
                except LinkError as error:
                    outcomes[label] = f"refused ({error})"[:160]
        await hold(deadline)
    finally:
        for link in links:
            link.abort()


async def many_destinations(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(h) one persistent message to each of `destinations` queues; then, if `limit` is not given,
    is a new destination still accepted? With `limit` (the broker's limits.max_destinations) the load
    goes past it: it must be refused with an ERROR naming the setting, once the table is full."""
    links: list[StompLink] = []
    limit = p.get("limit")
    try:
        link = await open_link(target, report, links)
        job = Job("produce", *target, "/queue/fair.many", count=p["destinations"], size=128,
                  window=100, queues=p["destinations"])
        result = WorkerResult("produce")
        refused = ""
        try:
            async with until(deadline):
                await produce(link, job, deadline, result)
        except LinkError as error:  # e.g. a destination limit: what matters is whether it lasts
            refused = report.notes["refused"] = str(error)
        report.notes["destinations written (receipted)"] = result.count
        if limit is None:
            report.checks["new destination accepted"] = await _fresh_destination(target, report, links)
        else:  # the victim's queue and up to a window of unreceipted SENDs are the slack
            report.checks["refused at the limit, naming limits.max_destinations"] = (
                "limits.max_destinations" in refused and limit - 200 <= result.count < limit)
        await hold(deadline)
    finally:
        for link in links:
            link.abort()


async def _fresh_destination(target: Target, report: Report, links: list[StompLink]) -> bool:
    try:
        link = await open_link(target, report, links)
        link.send(Frame("SEND", {"destination": "/queue/fair.fresh", "receipt": "fresh"}, b"fresh"))
        await link.wait_receipt("fresh", LINK_TIMEOUT)
        return True
    except (LinkError, OSError, TimeoutError) as error:
        report.errors.append(f"a SEND to a new destination failed: {error}")
        return False


def loads() -> dict[str, Load]:
    from benchmarks import hostile_frames

    return {
        "flood-producer": flood_producer, "like-stall": like_stall, "topic-fanout": topic_fanout,
        "backlog-drain": backlog_drain, "heartbeat-flood": hostile_frames.heartbeat_flood,
        "deep-selectors": deep_selectors, "idle-sockets": hostile_frames.idle_sockets,
        "many-destinations": many_destinations, "fat-transactions": hostile_frames.fat_transactions,
        "parked-frames": hostile_frames.parked_frames,
    }


async def run_load(kind: str, target: Target, params: dict[str, Any], duration: float) -> Report:
    """Run one load until its deadline (plus the reserve for its checks); never raises."""
    if not ipaddress.ip_address(target[0]).is_loopback:
        raise ValueError(f"hostile loads target loopback only, not {target[0]}")
    report = Report()
    deadline = time.monotonic() + duration
    try:
        async with asyncio.timeout(duration + CHECK_RESERVE):
            await loads()[kind](target, params, deadline, report)
    except TimeoutError:
        report.notes["cut off at the deadline"] = True
    except (LinkError, OSError) as error:
        report.errors.append(f"{type(error).__name__}: {error}")
    return report


def _child(kind: str, target: Target, params: dict[str, Any], duration: float, results: Any) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 999 sockets need more than 1024 fds
    try:
        import uvloop

        report = uvloop.run(run_load(kind, target, params, duration))
    except BaseException as error:  # reported to the parent, which decides
        report = Report(errors=[f"{type(error).__name__}: {error}"])
    results.put(asdict(report))


class HostileProcess:
    """One load in a spawned process; `wait()` returns its report and stops the process by its pid."""

    def __init__(self, kind: str, target: Target, params: dict[str, Any], duration: float) -> None:
        self.kind, self.duration = kind, duration
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.proc = ctx.Process(target=_child, args=(kind, target, params, duration, self.results),
                                daemon=True)

    def start(self) -> HostileProcess:
        self.proc.start()
        return self

    def wait(self) -> Report:
        try:
            report = Report(**self.results.get(timeout=self.duration + CHECK_RESERVE + 30))
        except queue.Empty:
            report = Report(errors=[f"the {self.kind} load did not report in time"])
        finally:
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)
            self.results.close()
            self.results.join_thread()
        return report
