"""A broker with users, groups and rights from a real BrokerConfig, and stomp.py peers that log in.

The authenticator is the one the daemon builds (broker.engine.users.build_authenticator), fed
argon2id hashes made here with cheap parameters so that a test's many logins stay fast; the
broker verifies them with the same code as any other hash.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterator
from typing import Any

import stomp
from argon2 import PasswordHasher

from broker.engine.users import build_authenticator
from config.model import BrokerConfig
from stores.base import Store
from tests.helpers.server import HOST, BrokerThread
from tests.helpers.stomppy import Listener

WAIT = 20.0  # generous: only a failing test waits this long, and CI machines are slow
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def user(name: str, password: str, *groups: str) -> dict[str, Any]:
    return {"name": name, "password_hash": CHEAP.hash(password), "groups": list(groups)}


def secure_config(users: list[dict[str, Any]] | None = None, entries: list[dict[str, Any]] | None = None,
                  **sections: Any) -> BrokerConfig:
    authentication = {"users": users or [], "failure_delay": 0.01, "max_failure_delay": 0.5,
                      **sections.pop("authentication", {})}
    authorization = {"entries": entries or [], **sections.pop("authorization", {})}
    return BrokerConfig(name="secure", connectors=[f"tcp://{HOST}:0"], authentication=authentication,
                        authorization=authorization, **sections)


@contextlib.contextmanager
def secure_broker(config: BrokerConfig, store: Store | None = None) -> Iterator[BrokerThread]:
    thread = BrokerThread(config, store, authenticator=build_authenticator(config.authentication)).start()
    try:
        yield thread
    finally:
        thread.stop()


class Peer:
    """A stomp.py 1.2 connection that logs in (or tries to) with `login`/`passcode`."""

    def __init__(self, port: int, login: str | None = None, passcode: str | None = None,
                 bind: str | None = None, **headers: str) -> None:
        self.conn = stomp.Connection12([(HOST, port)], heartbeats=(0, 0),
                                       bind_host_port=(bind, 0) if bind else None)
        self.listener = Listener()
        self.conn.set_listener("l", self.listener)
        self.conn.connect(login, passcode, wait=False, headers=headers)

    def connected(self, timeout: float = WAIT) -> bool:
        """True once CONNECTED came; False if the broker answered ERROR or closed instead."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.conn.is_connected():
                return True
            if self.listener.disconnected.is_set() or not self.listener.errors.empty():
                return False
            time.sleep(0.01)
        raise AssertionError("neither CONNECTED nor a refusal within the wait")

    def error(self, timeout: float = WAIT) -> Any:
        return self.listener.errors.get(timeout=timeout)

    def receipt(self, timeout: float = WAIT) -> str:
        return self.listener.receipts.get(timeout=timeout)

    def get(self, timeout: float = WAIT) -> Any:
        return self.listener.messages.get(timeout=timeout)

    def nothing(self, wait: float = 0.3) -> bool:
        try:
            self.listener.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def send(self, destination: str, body: str, receipt: str = "r", **headers: str) -> Any:
        """SEND with a receipt; the RECEIPT's id, or the ERROR frame that answered instead."""
        self.conn.send(destination, body, receipt=receipt, headers=headers)
        return self._answer(receipt)

    def subscribe(self, destination: str, sub_id: str = "s", receipt: str = "sub", **headers: str) -> Any:
        self.conn.subscribe(destination, id=sub_id, ack="auto", headers={"receipt": receipt, **headers})
        return self._answer(receipt)

    def _answer(self, receipt: str) -> Any:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                return self.listener.receipts.get(timeout=0.02)
            with contextlib.suppress(queue.Empty):
                error = self.listener.errors.get_nowait()
                assert error.headers.get("receipt-id") == receipt, error.headers
                return error
        raise AssertionError(f"no RECEIPT nor ERROR for {receipt}")

    def close(self) -> None:
        if self.conn.is_connected():
            with contextlib.suppress(Exception):
                self.conn.disconnect(receipt="bye")
        deadline = time.monotonic() + WAIT
        while self.conn.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)


@contextlib.contextmanager
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    try:
        yield made
    finally:
        for peer in made:
            peer.close()
