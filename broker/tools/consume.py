"""`batonmq consume`: take messages from one destination, acknowledge them per the ack mode, and
report what came: how many, how many flagged redelivered, how many duplicates.

A duplicate is a message whose `batonmq.producer-id` (or, without one, whose body) was already
seen in this run: the check of design.md section 7 (duplicates are allowed only when flagged
`redelivered`). The memory for this is bounded by `MAX_TRACKED`. `--count` counts distinct
messages, so a run through failovers stops after N different ones, however many came twice.

With a failover URL the run goes on through failovers: the client re-subscribes, and messages
delivered but not yet acknowledged before the failover come again flagged `redelivered`. Each
reconnect is printed on stderr; the summary counts them.

Ctrl-C ends the run early (asyncio's runner cancels it): what was taken is acknowledged, the client
disconnects, and the summary counts what was consumed, flagged interrupted.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from broker.tools.produce import failover_notices
from broker.tools.progress import Progress, cancelled_by_user, rate
from transports.client import Client, ClientError, Message, Subscription, connect
from transports.stomp.commands import PRODUCER_ID_HEADER

MAX_TRACKED = 2_000_000
DEFAULT_PREFETCH = 1000
# Under ack:client one cumulative ACK covers every message before it; sending one per batch is
# what makes that mode cheaper than client-individual.
CLIENT_ACK_EVERY = 100


@dataclass(slots=True)
class ConsumeOptions:
    url: str
    destination: str
    count: int | None = None
    ack: str = "auto"
    timeout: float | None = 10.0
    login: str | None = None
    passcode: str | None = None
    connect_timeout: float = 5.0
    # For ssl:// brokers (transports.tls.client_context); None: the system's CAs.
    tls: ssl.SSLContext | None = None


@dataclass(slots=True)
class ConsumeResult:
    destination: str
    requested: int | None
    consumed: int = 0
    unique: int = 0
    redelivered: int = 0
    duplicates: int = 0
    duplicates_redelivered: int = 0
    duplicates_unflagged: int = 0
    reconnects: int = 0
    extra_delivered: int = 0
    elapsed: float = 0.0
    timed_out: bool = False
    error: str | None = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        if self.error is not None or self.interrupted:
            return False
        return self.requested is None or self.unique == self.requested

    def fields(self) -> dict[str, object]:
        data: dict[str, object] = {"command": "consume", **asdict(self)}
        data["elapsed"] = round(self.elapsed, 3)
        data["rate"] = rate(self.consumed, self.elapsed)
        data["ok"] = self.ok
        return data

    def text(self) -> str:
        wanted = "" if self.requested is None else f"/{self.requested}"
        line = (f"consume: consumed {self.consumed}{wanted} from {self.destination}, redelivered "
                f"{self.redelivered}, duplicates {self.duplicates} in {self.elapsed:.2f}s "
                f"({rate(self.consumed, self.elapsed):,.0f} msg/s)")
        if self.duplicates:
            line += (f"; {self.unique} distinct, {self.duplicates_redelivered} of the duplicates "
                     "flagged redelivered")
        if self.reconnects:
            line += f"; {self.reconnects} reconnect(s)"
        if self.timed_out:
            line += "; stopped after the timeout"
        if self.extra_delivered:
            line += f"; {self.extra_delivered} more delivered beyond the count and not taken"
        if self.interrupted:
            line += "; interrupted"
        return line + (f"; error: {self.error}" if self.error else "")


class DuplicateTracker:
    """Seen-set of 16-byte digests, keyed by producer id or else by body; bounded in size."""

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        self._seen: set[bytes] = set()
        self._limit = limit
        self.saturated = False

    def seen_before(self, headers: dict[str, str], body: bytes) -> bool:
        producer_id = headers.get(PRODUCER_ID_HEADER)
        key = b"p" + producer_id.encode() if producer_id else b"b" + body
        digest = hashlib.blake2b(key, digest_size=16).digest()
        if digest in self._seen:
            return True
        if len(self._seen) < self._limit:
            self._seen.add(digest)
        else:
            self.saturated = True
        return False


async def consume(opts: ConsumeOptions, progress: Progress | None = None,
                  on_message: Callable[[Message], None] | None = None) -> ConsumeResult:
    result = ConsumeResult(opts.destination, opts.count)
    tracker = DuplicateTracker()
    # Ask for no more than we will take: under ack:auto a message the broker has sent is consumed.
    prefetch = min(opts.count, DEFAULT_PREFETCH) if opts.count else DEFAULT_PREFETCH
    started = time.monotonic()
    client: Client | None = None
    try:
        async with connect(opts.url, login=opts.login, passcode=opts.passcode, tls=opts.tls,
                           connect_timeout=opts.connect_timeout) as client:
            client.on_event(failover_notices("consume", progress, failover=client.failover))
            sub = await client.subscribe(opts.destination, ack=opts.ack, prefetch=prefetch)
            started = time.monotonic()
            last, last_at = await _take_all(sub, opts, result, tracker, progress, on_message)
            if opts.ack == "client" and last is not None and result.consumed % CLIENT_ACK_EVERY:
                await last.ack()
            # Delivered but not taken (only possible beyond --count). Unacknowledged ones return to
            # the queue on DISCONNECT, but under ack:auto the broker counts them consumed: say so.
            result.extra_delivered = sub.pending
            # The rate is over the time messages flowed, not the final wait for one that never came.
            result.elapsed = ((last_at or started) if result.timed_out else time.monotonic()) - started
    except (ClientError, OSError, ValueError) as exc:
        result.error = str(exc) or type(exc).__name__
        result.elapsed = time.monotonic() - started
    except asyncio.CancelledError:
        if not cancelled_by_user():
            raise
        result.interrupted = True  # Ctrl-C while connecting or disconnecting
        result.elapsed = time.monotonic() - started
    finally:
        if client is not None:
            result.reconnects = client.stats.reconnects
        if progress is not None:
            progress.finish()
    if result.timed_out and opts.count is not None and result.error is None:
        result.error = f"timed out after {opts.timeout}s without a message"
    return result


async def _take_all(sub: Subscription, opts: ConsumeOptions, result: ConsumeResult, tracker: DuplicateTracker,
                    progress: Progress | None,
                    on_message: Callable[[Message], None] | None) -> tuple[Message | None, float | None]:
    """Take messages until the count, the timeout or Ctrl-C (then `result.interrupted`, and the run
    still acknowledges and disconnects cleanly). Returns the last message and when it came."""
    timeout = opts.timeout or None  # 0 = wait for ever
    last: Message | None = None
    last_at: float | None = None
    try:
        while opts.count is None or result.unique < opts.count:
            message = await sub.get(timeout)
            if message is None:
                result.timed_out = True
                break
            _count(result, tracker, message)
            if on_message is not None:
                on_message(message)
            await _acknowledge(opts.ack, message, result.consumed)
            last, last_at = message, time.monotonic()
            if progress is not None:
                progress.update(result.consumed)
    except asyncio.CancelledError:
        if not cancelled_by_user():
            raise
        result.interrupted = True
    return last, last_at


def _count(result: ConsumeResult, tracker: DuplicateTracker, message: Message) -> None:
    result.consumed += 1
    if message.redelivered:
        result.redelivered += 1
    if tracker.seen_before(message.headers, message.body):
        result.duplicates += 1
        if message.redelivered:
            result.duplicates_redelivered += 1
        else:
            result.duplicates_unflagged += 1
    else:
        result.unique += 1


async def _acknowledge(mode: str, message: Message, consumed: int) -> None:
    if mode == "client-individual" or (mode == "client" and consumed % CLIENT_ACK_EVERY == 0):
        await message.ack()
