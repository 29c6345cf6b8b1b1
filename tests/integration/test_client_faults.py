"""The client against a deliberately misbehaving peer: faults a real broker should not commit
(silence, garbage, a CONNECT never answered), served on a loopback socket by this test."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.scriptedpeer import accept, frame, peer, read_frame
from transports.client import ClientError, ConnectFailed, ConnectionLost, ConnectionState, connect


async def test_unanswered_connect_times_out():
    async def mute(reader, writer):
        await asyncio.sleep(10)

    async with peer(mute) as url:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectFailed):
            await connect(url, connect_timeout=0.3)
        assert loop.time() - started < 2


async def test_refused_connect_is_a_client_error_not_retried():
    async def refuse(reader, writer):
        await read_frame(reader)
        writer.write(frame("ERROR", {"message": "bad credentials"}))
        await writer.drain()

    async with peer(refuse) as url:
        with pytest.raises(ClientError, match="bad credentials"):
            await connect(url, login="x", passcode="y")


async def test_error_for_a_receipt_fails_that_send_with_its_message():
    async def reject_send(reader, writer):
        await accept(reader, writer)
        command, headers = await read_frame(reader)
        assert command == "SEND"
        writer.write(frame("ERROR", {"receipt-id": headers["receipt"], "message": "queue full"}))
        await writer.drain()
        await asyncio.sleep(10)

    async with peer(reject_send) as url:
        client = await connect(url)
        with pytest.raises(ClientError, match="^queue full$"):
            await client.send("/queue/a", "x")
        assert client.state is ConnectionState.CLOSED  # an ERROR ends the session (STOMP 1.2)
        await client.close()


async def test_silent_broker_is_declared_dead_by_the_heartbeat_watchdog():
    async def go_silent(reader, writer):
        await accept(reader, writer, heartbeat="50,0")  # promises a beat every 50 ms, sends none
        await asyncio.sleep(10)

    async with peer(go_silent) as url:
        client = await connect(url, heartbeat=(0, 50))
        assert client.connection.session.expect_every == 0.05
        with pytest.raises(ConnectionLost, match="heart-beat"):
            await asyncio.wait_for(client.send("/queue/a", "x"), 3)
        assert client.state is ConnectionState.CLOSED
        await client.close()


async def test_garbage_from_the_broker_ends_the_connection():
    async def babble(reader, writer):
        await accept(reader, writer)
        await read_frame(reader)
        writer.write(b"this is not stomp\n\n\x00")
        await asyncio.sleep(10)

    async with peer(babble) as url:
        client = await connect(url)
        with pytest.raises(ConnectionLost, match="protocol"):
            await asyncio.wait_for(client.send("/queue/a", "x"), 3)
        await client.close()


async def test_full_local_queue_pauses_reading_without_tripping_the_watchdog():
    async def flood(reader, writer):
        await accept(reader, writer, heartbeat="50,0")
        command, headers = await read_frame(reader)
        assert command == "SUBSCRIBE"
        writer.write(frame("RECEIPT", {"receipt-id": headers["receipt"]}))
        for n in range(10):
            writer.write(frame("MESSAGE", {"subscription": headers["id"], "message-id": str(n),
                                           "destination": "/queue/a", "ack": str(n)}, str(n).encode()))
        while True:  # keep our heart-beat promise; the client reads none of it while paused
            writer.write(b"\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with peer(flood) as url:
        client = await connect(url, heartbeat=(0, 50))
        sub = await client.subscribe("/queue/a", prefetch=2)
        await asyncio.sleep(0.5)  # ten times the watchdog's limit, not consuming
        assert sub.pending == 2 and client.state is ConnectionState.CONNECTED
        got = [(await sub.get(2)).text for _ in range(10)]
        assert got == [str(n) for n in range(10)]
        assert client.state is ConnectionState.CONNECTED
        await client.close()


async def test_a_frame_arriving_with_connected_is_not_left_unread():
    async def connected_then_error(reader, writer):
        await read_frame(reader)
        # One write, so both frames arrive in the read that completes the handshake.
        writer.write(frame("CONNECTED", {"version": "1.2"}) + frame("ERROR", {"message": "shutting down"}))
        await writer.drain()
        await asyncio.sleep(10)  # keep the socket open: only the ERROR can end the session

    async with peer(connected_then_error) as url:
        closed = asyncio.Event()
        client = await connect(url)
        client.on_state(lambda state: closed.set() if state is ConnectionState.CLOSED else None)
        if client.state is not ConnectionState.CLOSED:
            await asyncio.wait_for(closed.wait(), 2)
        assert "shutting down" in str(client.connection.lost)
        await client.close()
