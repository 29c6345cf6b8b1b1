"""A trivial STOMP peer that stores nothing: it measures the load generator's own ceiling.

It answers CONNECT with CONNECTED and every frame that asks for one with a RECEIPT. A SEND is
forwarded at once to the current subscribers of its destination (so topic fan-out and end-to-end
latency have a ceiling too) and otherwise dropped. With `flood`, a SUBSCRIBE to a `/queue/` destination
is answered by a stream of MESSAGE frames as fast as the socket drains (the consume ceiling), until the
client leaves or the flood limit is reached.

    python -m benchmarks.sink --host 127.0.0.1 --port 0 [--flood]     # prints "listening HOST PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time

from transports import eventloop
from transports.stomp import Frame, ProtocolError, StompParser, encode

MAX_SUBSCRIPTIONS = 1000  # per connection
FLOOD_LIMIT = 10_000_000  # messages per flooded subscription: bounded even if the client never leaves
FLOOD_BATCH = 64
VERSION = "1.2"


class Hub:
    """Subscriptions by destination, shared by every connection of one sink."""

    def __init__(self, flood: bool, flood_size: int = 1024) -> None:
        self.flood = flood
        self.flood_body = (b"0123456789abcdef" * (flood_size // 16 + 1))[:flood_size]
        self.subscribers: dict[str, dict[tuple[SinkProtocol, str], str]] = {}
        self.message_seq = 0

    def forward(self, frame: Frame) -> None:
        subs = self.subscribers.get(frame.headers.get("destination", ""))
        if not subs:
            return
        self.message_seq += 1
        headers = {k: v for k, v in frame.headers.items() if k not in ("receipt", "content-length")}
        headers["message-id"] = str(self.message_seq)
        encoded: dict[str, bytes] = {}  # one encoding per subscription id, shared by its subscribers
        for (proto, sub_id), ack in list(subs.items()):
            data = encoded.get(sub_id)
            if data is None:
                data = encode(Frame("MESSAGE", {**headers, "subscription": sub_id, "ack": ack}, frame.body))
                encoded[sub_id] = data
            proto.write(data)


class SinkProtocol(asyncio.Protocol):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.parser = StompParser()
        self.transport: asyncio.Transport | None = None
        self.subs: dict[str, str] = {}  # subscription id -> destination
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.floods: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        for sub_id in list(self.subs):
            self._unsubscribe(sub_id)
        for task in self.floods:
            task.cancel()
        self.can_write.set()
        self.transport = None

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
            while (frame := self.parser.next_frame()) is not None:
                self.handle(frame)
        except ProtocolError as error:
            self.write(encode(Frame("ERROR", {"message": str(error)[:200]})))
            if self.transport is not None:
                self.transport.close()

    def handle(self, frame: Frame) -> None:
        command = frame.command
        if command in ("CONNECT", "STOMP"):
            self.write(encode(Frame("CONNECTED", {"version": VERSION, "server": "batonmq-sink",
                                                  "heart-beat": "0,0"}), VERSION))
            return
        if command == "SEND":
            self.hub.forward(frame)
        elif command == "SUBSCRIBE":
            self._subscribe(frame)
        elif command == "UNSUBSCRIBE":
            self._unsubscribe(frame.headers.get("id", ""))
        receipt = frame.headers.get("receipt")
        if receipt is not None:
            self.write(encode(Frame("RECEIPT", {"receipt-id": receipt})))
        if command == "DISCONNECT" and self.transport is not None:
            self.transport.close()

    def _subscribe(self, frame: Frame) -> None:
        sub_id, destination = frame.headers.get("id", "0"), frame.headers.get("destination", "")
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            return
        self.subs[sub_id] = destination
        self.hub.subscribers.setdefault(destination, {})[(self, sub_id)] = frame.headers.get("ack", "auto")
        if self.hub.flood and destination.startswith("/queue/"):
            task = asyncio.ensure_future(self._flood(sub_id, destination))
            self.floods.add(task)
            task.add_done_callback(self.floods.discard)

    def _unsubscribe(self, sub_id: str) -> None:
        destination = self.subs.pop(sub_id, None)
        if destination is None:
            return
        subs = self.hub.subscribers.get(destination, {})
        subs.pop((self, sub_id), None)
        if not subs:
            self.hub.subscribers.pop(destination, None)

    async def _flood(self, sub_id: str, destination: str) -> None:
        head = encode(Frame("MESSAGE", {"destination": destination, "subscription": sub_id}),
                      content_length=False)[: -len(b"\n\0")]
        tail = b"content-length:%d\n\n" % len(self.hub.flood_body) + self.hub.flood_body + b"\0"
        seq = 0
        while seq < FLOOD_LIMIT and sub_id in self.subs and self.transport is not None:
            await self.can_write.wait()
            batch = []
            for _ in range(FLOOD_BATCH):
                seq += 1
                batch.append(b"%smessage-id:f%d\nack:f%d\nbench-ts:%d\n%s"
                             % (head, seq, seq, time.time_ns(), tail))
            self.write(b"".join(batch))
            await asyncio.sleep(0)  # let the reader run: ACKs and DISCONNECT must get through


async def serve(host: str, port: int, flood: bool = False) -> asyncio.Server:
    hub = Hub(flood)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SinkProtocol(hub), host, port)


async def _main(args: argparse.Namespace) -> None:
    server = await serve(args.host, args.port, args.flood)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening {host} {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sink", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (printed on stdout)")
    parser.add_argument("--flood", action="store_true", help="stream MESSAGEs to every /queue/ subscriber")
    args = parser.parse_args(argv)
    eventloop.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
