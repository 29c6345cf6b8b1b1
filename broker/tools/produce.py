"""`batonmq produce`: send N messages to one destination and report how many were receipted.

With `receipts` every SEND waits for its RECEIPT (the durability a careful producer gets). Without,
sends are pipelined and the final DISCONNECT is receipted: STOMP 1.2 says a receipt for DISCONNECT
means every earlier frame was received, so the count is still exact (or the run fails).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass

from broker.tools.progress import Progress, rate
from transports.client import ClientError, connect

log = logging.getLogger("batonmq.produce")

SEQ = "{seq}"
DEFAULT_BODY = "message {seq}"
FILLER = b"."
MAX_SIZE = 64 * 1024 * 1024


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


@dataclass(slots=True)
class ProduceResult:
    destination: str
    requested: int
    sent: int = 0
    receipted: int = 0
    elapsed: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.receipted == self.requested

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
    try:
        async with connect(opts.url, login=opts.login, passcode=opts.passcode,
                           connect_timeout=opts.connect_timeout) as client:
            started = time.monotonic()
            for seq in range(1, opts.count + 1):
                await _pace(opts.rate, started, seq - 1)
                body = make_body(opts.body, seq, opts.size)
                await client.send(opts.destination, body, persistent=opts.persistent, receipt=opts.receipts)
                result.sent += 1
                if opts.receipts:
                    result.receipted += 1
                if progress is not None:
                    progress.update(result.sent)
            # Leaving the block sends DISCONNECT and awaits its receipt (or raises).
        if not opts.receipts:
            result.receipted = result.sent
    except (ClientError, OSError, ValueError) as exc:
        result.error = str(exc) or type(exc).__name__
    finally:
        result.elapsed = time.monotonic() - started
        if progress is not None:
            progress.finish()
    return result


async def _pace(per_second: float | None, started: float, sent: int) -> None:
    """Hold the average at `per_second` by sleeping until message `sent` is due."""
    if not per_second:
        return
    delay = started + sent / per_second - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
