"""A scripted STOMP peer on a loopback socket: for faults no real broker should commit.

Each accepted connection runs `script(reader, writer)`; the frames are written by hand here on
purpose, so the client under test is checked against bytes, not against our own codec.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def frame(command: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [command] + [f"{k}:{v}" for k, v in (headers or {}).items()]
    return ("\n".join(lines) + "\n\n").encode() + body + b"\x00"


async def read_frame(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    raw = (await asyncio.wait_for(reader.readuntil(b"\x00"), 5)).lstrip(b"\r\n")
    head = raw.split(b"\n\n", 1)[0].decode().split("\n")
    pairs = (line.split(":", 1) for line in head[1:] if line)
    return head[0], {k: v.replace("\\c", ":") for k, v in pairs}


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heartbeat: str = "0,0") -> None:
    """Answer the client's CONNECT with CONNECTED (STOMP 1.2)."""
    command, _ = await read_frame(reader)
    assert command == "CONNECT"
    writer.write(frame("CONNECTED", {"version": "1.2", "heart-beat": heartbeat}))


@contextlib.asynccontextmanager
async def peer(script: Script) -> AsyncIterator[str]:
    """Serve `script` on 127.0.0.1:<free port>; yields the tcp:// URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
