"""`batonmq produce`: send N messages to one destination and report how many were receipted.

With `receipts` every SEND waits for its RECEIPT (the durability a careful producer gets). Without,
sends are pipelined: a persistent one is still tracked by the client (with a receipt nobody waits
for), and the final DISCONNECT waits until all of them are receipted; STOMP 1.2 says a receipt for
DISCONNECT means every earlier frame was received, so the count is still exact (or the run fails).

With a failover URL the run goes on through failovers: the client reconnects and resends what was
not receipted, with its original `batonmq.producer-id` (the broker drops a copy it already has).
Each reconnect is printed on stderr; the summary counts resends and reconnects.

Ctrl-C ends the run early: asyncio's runner cancels it, sending stops, outstanding receipts are
awaited for a few seconds and the summary says what was sent and receipted, flagged interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TextIO

from broker.tools.progress import Progress, cancelled_by_user, rate
from transports.client import Client, ClientError, ConnectionEvent, ConnectionState, connect

log = logging.getLogger("batonmq.produce")

SEQ = "{seq}"
DEFAULT_BODY = "message {seq}"
FILLER = b"."
MAX_SIZE = 64 * 1024 * 1024
# How long the closing DISCONNECT may wait for outstanding receipts (through failovers); after
# Ctrl-C the user wants to stop, so only briefly.
DRAIN_TIMEOUT = 120.0
INTERRUPTED_DRAIN = 5.0


@dataclass(slots=True)
class ProduceOptions:
    url: str
    destination: str
    count: int = 1
    size: int | None = None
    body: str | None = None
    persistent: bool = False
    receipts: bool = False
    rate: float | None = None
    login: str | None = None
    passcode: str | None = None
    connect_timeout: float = 5.0
    # For ssl:// brokers (transports.tls.client_context); None: the system's CAs.
    tls: ssl.SSLContext | None = None


@dataclass(slots=True)
class ProduceResult:
    destination: str
    requested: int
    sent: int = 0
    receipted: int = 0
    resent: int = 0
    reconnects: int = 0
    elapsed: float = 0.0
    error: str | None = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted and self.receipted == self.requested

    def fields(self) -> dict[str, object]:
        data: dict[str, object] = {"command": "produce", **asdict(self)}
        data["elapsed"] = round(self.elapsed, 3)
        data["rate"] = rate(self.receipted, self.elapsed)
        data["ok"] = self.ok
        return data

    def text(self) -> str:
        per_second = rate(self.receipted, self.elapsed)
        line = (f"produce: sent {self.sent}/{self.requested}, receipted {self.receipted} "
                f"to {self.destination} in {self.elapsed:.2f}s ({per_second:,.0f} msg/s)")
        if self.reconnects or self.resent:
            line += f"; {self.reconnects} reconnect(s), {self.resent} resent"
        if self.interrupted:
            line += "; interrupted"
        return line + (f"; error: {self.error}" if self.error else "")


def make_body(template: str | None, seq: int, size: int | None) -> bytes:
    """The body of message `seq`. Only the literal `{seq}` is substituted (str.replace, never
    str.format: the template is user input). `size` pads with '.' or cuts to exactly that many bytes."""
    text = (template if template is not None else DEFAULT_BODY).replace(SEQ, str(seq))
    body = text.encode("utf-8")
    if size is None:
        return body
    if len(body) >= size:
        return body[:size]
    return body + FILLER * (size - len(body))


async def produce(opts: ProduceOptions, progress: Progress | None = None) -> ProduceResult:
    result = ProduceResult(opts.destination, opts.count)
    started = time.monotonic()
    client: Client | None = None
    try:
        async with connect(opts.url, login=opts.login, passcode=opts.passcode, tls=opts.tls,
                           connect_timeout=opts.connect_timeout) as client:
            client.on_event(failover_notices("produce", progress, failover=client.failover))
            started = time.monotonic()
            result.interrupted = not await _send_all(client, opts, result, progress)
            # Every tracked send receipted (through failovers), then DISCONNECT with a receipt.
            await client.disconnect(timeout=INTERRUPTED_DRAIN if result.interrupted else DRAIN_TIMEOUT)
        _count_receipted(result, client, opts)
    except (ClientError, OSError, ValueError) as exc:
        result.error = str(exc) or type(exc).__name__
        if client is not None and (opts.receipts or opts.persistent):
            result.receipted = client.stats.receipted
    except asyncio.CancelledError:
        if not cancelled_by_user():
            raise
        # Ctrl-C before the sends began (while connecting) or while draining.
        result.interrupted = True
        if client is not None and (opts.receipts or opts.persistent):
            result.receipted = client.stats.receipted
    finally:
        result.elapsed = time.monotonic() - started
        if client is not None:
            result.resent, result.reconnects = client.stats.resent, client.stats.reconnects
        if progress is not None:
            progress.finish()
    return result


async def _send_all(client: Client, opts: ProduceOptions, result: ProduceResult,
                    progress: Progress | None) -> bool:
    """Send every message; False if Ctrl-C cut the run short (the rest of the run then still drains
    and disconnects, so the summary's counts are exact)."""
    started = time.monotonic()
    try:
        for seq in range(1, opts.count + 1):
            await _pace(opts.rate, started, seq - 1)
            body = make_body(opts.body, seq, opts.size)
            await client.send(opts.destination, body, persistent=opts.persistent, receipt=opts.receipts)
            result.sent += 1
            if progress is not None:
                progress.update(result.sent)
    except asyncio.CancelledError:
        if not cancelled_by_user():
            raise
        return False
    return True


def _count_receipted(result: ProduceResult, client: Client, opts: ProduceOptions) -> None:
    """After a clean DISCONNECT: tracked sends count by their receipts; untracked ones (not
    persistent, no receipts) only if no failover could have lost them unseen."""
    if opts.receipts or opts.persistent:
        result.receipted = client.stats.receipted
    elif client.stats.reconnects == 0:
        result.receipted = result.sent
    else:
        result.error = ("non-persistent sends without receipts are not confirmed across a failover; "
                        "use --persistent or --receipts")


def failover_notices(label: str, progress: Progress | None = None, stream: TextIO | None = None,
                     failover: bool = True) -> Callable[[ConnectionEvent], None]:
    """An event callback that prints each lost connection, reconnect and failure on stderr.
    `failover`: the URL was a failover: one, so a lost connection is followed by a reconnect."""
    out = stream if stream is not None else sys.stderr
    lost_at: list[float] = []

    def notice(event: ConnectionEvent) -> None:
        line = None
        if event.state is ConnectionState.DISCONNECTED:
            lost_at[:] = [event.at]
            line = f"{label}: connection lost ({event.reason})" + ("; failing over" if failover else "")
        elif event.state is ConnectionState.CONNECTED and lost_at:
            line = f"{label}: reconnected: {event.describe()} after {event.at - lost_at[0]:.3f}s"
            lost_at.clear()
        elif event.state is ConnectionState.FAILED:
            line = f"{label}: {event.describe()}"
        if line is not None:
            if progress is not None:
                progress.finish()
            print(line, file=out, flush=True)

    return notice


async def _pace(per_second: float | None, started: float, sent: int) -> None:
    """Hold the average at `per_second` by sleeping until message `sent` is due."""
    if not per_second:
        return
    delay = started + sent / per_second - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
