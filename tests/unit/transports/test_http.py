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


def test_parse_head_bounds_and_forms():
    import pytest

    from transports.http import MAX_HEADERS, BadRequest, body_length, parse_head

    request = parse_head(b"POST /api/queues/a%2Fb/move?limit=3&x=%20 HTTP/1.1\r\nContent-Length: 12\r\n"
                         b"X-Thing:  v \r\n\r\n")
    assert (request.method, request.segments(), request.query) == ("POST", ["api", "queues", "a/b", "move"],
                                                                  {"limit": "3", "x": " "})
    assert request.headers["x-thing"] == "v" and body_length(request, 100) == 12
    for head, status in ((b"BREW / HTTP/1.1\r\n\r\n", 501), (b"GET x HTTP/1.1\r\n\r\n", 400),
                         (b"GET / HTTP/1.1\r\n bad: folded\r\n\r\n", 400), (b"GET / SPDY\r\n\r\n", 400),
                         (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * (MAX_HEADERS + 1) + b"\r\n", 400),
                         (b"GET /?" + b"a=1&" * 40 + b" HTTP/1.1\r\n\r\n", 400)):
        with pytest.raises(BadRequest) as refused:
            parse_head(head)
        assert refused.value.status == status, head[:40]
    for headers, status in (({"content-length": "101"}, 413), ({"content-length": "-1"}, 400),
                            ({"transfer-encoding": "chunked"}, 411)):
        with pytest.raises(BadRequest) as refused:
            body_length(parse_head(b"POST / HTTP/1.1\r\n" + b"".join(
                f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"), 100)
        assert refused.value.status == status


async def test_a_slow_body_is_cut_off(monkeypatch):
    import transports.http as http
    from transports.http import Reply

    monkeypatch.setattr(http, "READ_TIMEOUT", 0.3)
    seen = []

    async def handler(request):
        seen.append(request.body)
        return Reply(200, "text/plain", b"ok")

    server = HttpServer("127.0.0.1", 0, handler=handler, max_body=10)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        writer.write(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")  # 3 bytes never come
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert (await request(server.bound_port, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde")
                ).endswith(b"ok") and seen == [b"abcde"]
    finally:
        await server.stop()
