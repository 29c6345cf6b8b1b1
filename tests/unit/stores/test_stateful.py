"""Hypothesis stateful test: each store beside a plain model (dict of lists), reopened between steps.

A failure shrinks to a minimal program of adds, removes, subscription changes, reads and reopens.
Each rule runs a coroutine on the machine's own event loop (created in __init__, closed in teardown).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from stores.base import (
    AddMessage,
    DropSubscription,
    DurableSubscription,
    Op,
    PutSubscription,
    Recovered,
    RemoveMessage,
    Store,
    StoredMessage,
)
from stores.registry import create_store
from tests.unit.stores.contract import STORE_KINDS, as_model, require_store, settings_for

QUEUES = ["/queue/a", "/queue/b"]
SUB_KEYS = ["sub/c1/s1", "sub/c2/s2"]
WINDOW = 4

bodies = st.binary(max_size=64)
headers = st.dictionaries(st.sampled_from(["k", "priority", "x:y"]), st.text(max_size=8), max_size=2)


def machine_for(kind: str) -> type[RuleBasedStateMachine]:
    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.tmp = Path(tempfile.mkdtemp(prefix=f"stateful-{kind}-"))
            self.settings = settings_for(kind, duplicate_window=WINDOW)
            self.model: dict[str, list[StoredMessage]] = {}
            self.subs: dict[str, DurableSubscription] = {}
            self.producer_ids: list[str] = []
            self.gone: list[tuple[str, str]] = []  # (queue, message id) removed or dropped
            self.counter = 0
            self.store: Store | None = None
            self.recovered: Recovered | None = self._open()

        def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
            return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

        def _open(self) -> Recovered:
            self.store = create_store(self.tmp, self.settings)
            return self.run(self.store.open())

        def _write(self, ops: list[Op]) -> None:
            assert self.store is not None
            self.run(self.store.write(ops))

        @rule(queue=st.sampled_from(QUEUES + SUB_KEYS), body=bodies, hdrs=headers, with_pid=st.booleans())
        def add(self, queue: str, body: bytes, hdrs: dict[str, str], with_pid: bool) -> None:
            if queue in SUB_KEYS and queue not in self.subs:
                queue = QUEUES[0]  # the broker stores under a subscription key only while it exists
            self.counter += 1
            pid = f"p{self.counter}" if with_pid else None
            msg = StoredMessage(f"m{self.counter}", queue if queue in QUEUES else "/topic/t", hdrs, body, pid)
            self._write([AddMessage(queue, msg)])
            self.model.setdefault(queue, []).append(msg)
            if pid is not None:
                self.producer_ids = (self.producer_ids + [pid])[-WINDOW:]

        @precondition(lambda self: any(self.model.values()))
        @rule(data=st.data())
        def remove(self, data: st.DataObject) -> None:
            queue = data.draw(st.sampled_from(sorted(q for q, ms in self.model.items() if ms)))
            index = data.draw(st.integers(0, len(self.model[queue]) - 1))
            msg = self.model[queue].pop(index)
            self._write([RemoveMessage(queue, msg.message_id)])
            self.gone.append((queue, msg.message_id))

        @precondition(lambda self: len(self.model.get("/queue/a", [])) >= 1)
        @rule(body=bodies)
        def add_and_remove_in_one_batch(self, body: bytes) -> None:
            victim = self.model["/queue/a"].pop(0)
            self.gone.append(("/queue/a", victim.message_id))
            self.counter += 1
            msg = StoredMessage(f"m{self.counter}", "/queue/b", {}, body)
            self._write([RemoveMessage("/queue/a", victim.message_id), AddMessage("/queue/b", msg)])
            self.model.setdefault("/queue/b", []).append(msg)

        @rule(key=st.sampled_from(SUB_KEYS), selector=st.none() | st.just("prio > 3"))
        def put_subscription(self, key: str, selector: str | None) -> None:
            sub = DurableSubscription(key, key.split("/")[1], key.split("/")[2], "/topic/t", selector)
            self._write([PutSubscription(sub)])
            self.subs[key] = sub

        @precondition(lambda self: bool(self.subs))
        @rule(data=st.data())
        def drop_subscription(self, data: st.DataObject) -> None:
            key = data.draw(st.sampled_from(sorted(self.subs)))
            self._write([DropSubscription(key)])
            del self.subs[key]
            self.gone.extend((key, m.message_id) for m in self.model.pop(key, []))

        @rule(queue=st.sampled_from(QUEUES + SUB_KEYS), limit=st.integers(1, 3))
        def read_in_pages(self, queue: str, limit: int) -> None:
            assert self.store is not None
            got: list[StoredMessage] = []
            after: int | None = None
            while True:
                page = self.run(self.store.read_batch(queue, after, limit))
                got.extend(page.messages)
                if page.messages:
                    assert page.next == self.store.position(queue, page.messages[-1].message_id)
                if len(page.messages) < limit:
                    break
                after = page.next
            assert got == self.model.get(queue, [])

        @precondition(lambda self: any(self.model.values()) or self.gone)
        @rule(data=st.data())
        def read_one(self, data: st.DataObject) -> None:
            assert self.store is not None
            live = [(q, m.message_id, m) for q, ms in self.model.items() for m in ms]
            dead = [(q, mid, None) for q, mid in self.gone]
            queue, message_id, expected = data.draw(st.sampled_from(live + dead))
            assert self.run(self.store.read(queue, message_id)) == expected

        @rule()
        def reopen(self) -> None:
            assert self.store is not None
            self.run(self.store.close())
            self.store = None
            self.recovered = self._open()

        @invariant()
        def recovered_matches_model(self) -> None:
            # Checked on the last recovery; it is refreshed only by `reopen`, so compare then.
            if self.recovered is None:
                return
            expected = {q: ms for q, ms in self.model.items() if ms}
            assert as_model(self.recovered) == expected
            assert set(self.recovered.subscriptions) == set(self.subs.values())
            assert self.recovered.producer_ids == self.producer_ids
            self.recovered = None  # later steps change the model; the next reopen checks again

        def teardown(self) -> None:
            try:
                if self.store is not None:
                    self.run(self.store.close())
            finally:
                self.loop.close()
                shutil.rmtree(self.tmp, ignore_errors=True)

    StoreMachine.__name__ = f"{kind.title()}StoreMachine"
    return StoreMachine


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_store_matches_model(kind: str) -> None:
    require_store(kind)
    run_state_machine_as_test(
        machine_for(kind),
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
