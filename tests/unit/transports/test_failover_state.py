"""Connection events: what callbacks and the async iterator see."""

from __future__ import annotations

import asyncio

from transports.client.state import ConnectionEvent, ConnectionState, EventStream, StateListeners

S = ConnectionState


def test_state_callbacks_hear_changes_event_callbacks_hear_every_attempt():
    listeners = StateListeners()
    states, events = [], []
    listeners.add(states.append)
    listeners.add_event(events.append)
    listeners.emit(ConnectionEvent(S.CONNECTED, broker=("127.0.0.2", 61616)))
    listeners.emit(ConnectionEvent(S.DISCONNECTED, reason="broker closed the connection"))
    listeners.emit(ConnectionEvent(S.RECONNECTING, attempt=1))
    listeners.emit(ConnectionEvent(S.RECONNECTING, attempt=2, delay=0.01))
    listeners.emit(ConnectionEvent(S.CONNECTED, broker=("127.0.0.3", 61616)))
    assert states == [S.CONNECTED, S.DISCONNECTED, S.RECONNECTING, S.CONNECTED]
    assert [e.attempt for e in events if e.state is S.RECONNECTING] == [1, 2]
    assert events[-1].describe() == "connected to tcp://127.0.0.3:61616"
    assert events[1].describe() == "disconnected: broker closed the connection"
    assert events[3].describe() == "reconnecting: attempt 2 after 0.010s"
    assert all(e.at > 0 for e in events)
    assert listeners.last_event is events[-1]


def test_a_failing_callback_does_not_stop_the_others(caplog):
    listeners = StateListeners()
    seen = []
    listeners.add(lambda state: 1 / 0)
    listeners.add(seen.append)
    listeners.set(S.CONNECTED)
    assert seen == [S.CONNECTED] and "state callback" in caplog.text


async def test_event_stream_ends_after_a_terminal_event_and_stays_bounded():
    listeners = StateListeners()
    stream = EventStream(listeners, limit=3)
    for attempt in range(1, 6):
        listeners.emit(ConnectionEvent(S.RECONNECTING, attempt=attempt))
    listeners.emit(ConnectionEvent(S.FAILED, reason="gave up"))
    got = [event async for event in stream]
    assert [(e.state, e.attempt) for e in got] == [(S.RECONNECTING, 4), (S.RECONNECTING, 5), (S.FAILED, 0)]
    assert not listeners._event_callbacks  # unregistered when the iteration ended
    assert S.FAILED.terminal and S.CLOSED.terminal and not S.RECONNECTING.terminal
    await asyncio.sleep(0)
