"""Message: what a fan-out copy keeps and what it starts afresh."""

from __future__ import annotations

import dataclasses

from broker.engine.message import Message, from_send

PER_QUEUE = {"redelivered": False, "nacks": 0, "stored": False}  # delivery state, fresh in each queue


def test_copy_keeps_every_field_but_the_delivery_state() -> None:
    message = from_send("ID:x-1", "/topic/t", {"persistent": "true", "priority": "7", "expires": "9",
                                               "batonmq.producer-id": "p-1", "h": "v"}, b"body")
    message.redelivered, message.nacks, message.stored = True, 3, True
    copy = message.copy()
    assert copy is not message
    for field in dataclasses.fields(Message):  # a field added later must be copied too
        expected = PER_QUEUE.get(field.name, getattr(message, field.name))
        assert getattr(copy, field.name) == expected, field.name
    assert copy.headers is message.headers and copy.body is message.body  # content is shared
