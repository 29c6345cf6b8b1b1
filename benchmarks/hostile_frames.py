"""Hostile loads about connections and frames: EOL floods, idle sockets, fat transactions, parked frames.

Same shape as the loads in benchmarks/hostile.py. Large payloads go out in slices of at most WRITE_SLICE
bytes with a drain after each, so that this process's own memory stays small while the broker's is
what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from benchmarks import hostile_payloads as payloads
from benchmarks.hostile import LINK_TIMEOUT, REFUSED, Report, Target, discard, hold, until
from benchmarks.link import LinkError, StompLink
from transports.stomp import Frame

WRITE_SLICE = 256 * 1024
OPEN_BATCH = 100  # sockets opened at once
NEWLINES = b"\n" * (64 * 1024)
# Opening all the idle sockets may outlast a short load: their admission check needs all of them.
OPEN_EXTRA = 15.0


async def write_sliced(writer: asyncio.StreamWriter, data: bytes, report: Report, key: str) -> None:
    view = memoryview(data)
    for start in range(0, len(data), WRITE_SLICE):
        piece = view[start:start + WRITE_SLICE]
        writer.write(bytes(piece))
        await writer.drain()
        report.add(key, len(piece))


async def heartbeat_flood(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(e) bursts of `burst_bytes` heart-beat EOLs on one connection, one burst per second."""
    link = await StompLink.open(*target, timeout=LINK_TIMEOUT)
    try:
        async with until(deadline):
            for burst in range(p["bursts"]):
                began = time.monotonic()
                for size in payloads.newline_bursts(p["burst_bytes"], len(NEWLINES)):
                    link.write(NEWLINES[:size])
                    await link.writer.drain()
                    report.add("bytes of EOLs", size)
                report.notes["bursts"] = burst + 1
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
        await hold(deadline)
    finally:
        link.abort()


async def idle_sockets(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(g) 999 sockets that never send CONNECT; then: is a new client (another address) admitted?"""
    writers: list[asyncio.StreamWriter] = []
    watchers: list[asyncio.Task[None]] = []
    report.checks["new client admitted"] = False
    began = time.monotonic()
    try:
        for start in range(0, p["sockets"], OPEN_BATCH):
            if time.monotonic() >= deadline + OPEN_EXTRA:
                break  # the broker accepts too slowly: check admission with what is open
            count = min(OPEN_BATCH, p["sockets"] - start)
            opened = await asyncio.gather(*(_open_idle(target, p["source"]) for _ in range(count)),
                                          return_exceptions=True)
            for item in opened:
                if isinstance(item, BaseException):
                    report.add("sockets refused")
                    continue
                reader, writer = item
                writers.append(writer)
                watchers.append(asyncio.ensure_future(_watch_close(reader, report)))
        report.notes["sockets opened"] = len(writers)
        report.notes["seconds to open"] = round(time.monotonic() - began, 2)
        report.checks["new client admitted"] = await _admitted(target, p["check_source"], report)
        await hold(deadline)
    finally:
        for task in watchers:
            task.cancel()
        for writer in writers:
            writer.transport.abort()


async def _open_idle(target: Target, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    connecting = asyncio.open_connection(*target, local_addr=(source, 0))
    return await asyncio.wait_for(connecting, LINK_TIMEOUT)


async def _watch_close(reader: asyncio.StreamReader, report: Report) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(4096):
            pass
    report.add("sockets closed by the broker")


async def _admitted(target: Target, source: str, report: Report) -> bool:
    try:
        link = await StompLink.open(*target, timeout=LINK_TIMEOUT, local_addr=(source, 0))
    except (LinkError, OSError, TimeoutError) as error:
        report.errors.append(f"a new client from {source} was not admitted: {error}")
        return False
    await link.disconnect()
    return True


async def fat_transactions(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(i) `transactions` connections, each BEGIN then `tx_bytes` of SENDs that are never committed."""
    links: list[StompLink] = []
    readers: list[asyncio.Task[None]] = []
    body = b"t" * p["message_size"]
    try:
        for _ in range(p["transactions"]):
            link = await StompLink.open(*target, timeout=LINK_TIMEOUT)
            links.append(link)
            readers.append(asyncio.ensure_future(discard(link.reader, report, "bytes from the broker")))
        async with until(deadline):
            await asyncio.gather(*(_fill(link, f"tx{i}", body, p, report) for i, link in enumerate(links)))
        await hold(deadline)
        _refusal_check(report, p["transactions"] * p["tx_bytes"], p)
    finally:
        for task in readers:
            task.cancel()
        for link in links:
            link.abort()


async def _fill(link: StompLink, tx: str, body: bytes, p: dict[str, Any], report: Report) -> None:
    try:
        link.send(Frame("BEGIN", {"transaction": tx}))
        for size in payloads.transaction_plan(p["tx_bytes"], len(body)):
            head = payloads.send_head("/queue/fair.tx", size, {"transaction": tx, "persistent": "true"})
            link.write(head)
            await write_sliced(link.writer, body[:size], report, "bytes in transactions")
            link.write(b"\0")
        report.add("transactions filled")
    except (OSError, ConnectionError) as error:
        report.add("transactions cut off by the broker")
        report.notes["last cut-off"] = f"{type(error).__name__}: {error}"


async def parked_frames(target: Target, p: dict[str, Any], deadline: float, report: Report) -> None:
    """(j) `connections` connections, each parked on a SEND one byte short of `frame_bytes`."""
    links: list[StompLink] = []
    readers: list[asyncio.Task[None]] = []
    frame = payloads.unfinished_send("/queue/fair.parked", p["frame_bytes"])
    try:
        for _ in range(p["connections"]):
            link = await StompLink.open(*target, timeout=LINK_TIMEOUT)
            links.append(link)
            readers.append(asyncio.ensure_future(discard(link.reader, report, "bytes from the broker")))
        async with until(deadline):
            await asyncio.gather(*(_park(link, frame, report) for link in links))
        await hold(deadline)
        _refusal_check(report, p["connections"] * p["frame_bytes"], p)
    finally:
        for task in readers:
            task.cancel()
        for link in links:
            link.abort()


def _refusal_check(report: Report, offered: int, p: dict[str, Any]) -> None:
    """More than the broker lets frames and transactions hold (half its budget) was offered: some
    offender must have had an ERROR naming a memory limit (and the RSS goal says the rest held)."""
    budget = p.get("memory_budget")
    if budget is not None and offered > budget // 2:
        report.checks["offender got an ERROR naming a memory limit"] = report.notes.get(REFUSED, 0) > 0


async def _park(link: StompLink, frame: bytes, report: Report) -> None:
    try:
        await write_sliced(link.writer, frame, report, "bytes parked")
        report.add("connections parked")
    except (OSError, ConnectionError):
        report.add("connections cut off by the broker")
