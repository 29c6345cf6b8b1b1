from __future__ import annotations

import asyncio

from transports.http import MAX_HEAD, HttpServer


async def request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return data


async def test_routes_and_errors():
    server = HttpServer("127.0.0.1", 0, {"/healthz": lambda: (503, "text/plain", b"slave\n")})
    await server.start()
    try:
        reply = await request(server.bound_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.0 503 ")
        assert reply.endswith(b"\r\n\r\nslave\n")
        assert (await request(server.bound_port, b"GET /nope HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.0 404")
        assert (await request(server.bound_port, b"POST /healthz HTTP/1.0\r\n\r\n")).startswith(
            b"HTTP/1.0 405"
        )
        assert (await request(server.bound_port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.0 400")
        head = await request(server.bound_port, b"HEAD /healthz HTTP/1.0\r\n\r\n")
        assert head.endswith(b"\r\n\r\n")
    finally:
        await server.stop()


async def test_oversized_request_head_is_dropped_without_reply():
    server = HttpServer("127.0.0.1", 0, {"/": lambda: (200, "text/plain", b"ok")})
    await server.start()
    try:
        reply = await request(
            server.bound_port, b"GET / HTTP/1.0\r\nX: " + b"a" * (MAX_HEAD * 2) + b"\r\n\r\n"
        )
        assert reply == b""
    finally:
        await server.stop()
