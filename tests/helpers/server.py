"""An in-process broker (Broker + a StompServer for each connector, on 127.0.0.1 with an OS-chosen
free port) in its own thread; `server` is the first connector's.

stomp.py is a blocking, threaded client, so the broker's event loop runs in a thread of its own; tests
talk to it over real loopback sockets and may run coroutines on its loop with `call()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

from broker.engine.auth import Authenticator
from broker.engine.core import Broker
from config.model import BrokerConfig, Limits
from stores.base import Store
from transports.registry import create_server
from transports.server import StompServer

HOST = "127.0.0.1"


class BrokerThread:
    def __init__(
        self, config: BrokerConfig | None = None, store: Store | None = None, uvloop: bool = False,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.config = config or BrokerConfig(name="test", connectors=[f"tcp://{HOST}:0"])
        self.store = store
        self.authenticator = authenticator
        if uvloop:  # the daemon's loop; the connector must work on it as on the standard one
            import uvloop as uv

            self.loop = uv.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.broker: Broker | None = None
        self.server: StompServer | None = None
        self.servers: list[StompServer] = []
        self._thread = threading.Thread(target=self._run, name="broker-loop", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.bound_port

    def start(self) -> BrokerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("broker thread did not start within 10 s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            recovered = await self.store.open() if self.store is not None else None
            self.broker = Broker(self.config, self.store, self.authenticator)
            await self.broker.start(recovered)
            for connector in self.config.connectors:
                server = create_server(connector, self.broker.handler_factory, self.config.limits,
                                       self.config.tls, self.broker.memory)
                await server.start()
                self.servers.append(server)
            self.server = self.servers[0]
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        for server in self.servers:
            await server.stop(grace=1.0)
        await self.broker.stop()
        if self.store is not None:
            await self.store.close()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        """Run a coroutine on the broker's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stats(self) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            assert self.broker is not None
            return self.broker.stats()

        return self.call(get())

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        if self._thread.is_alive():
            raise RuntimeError("broker thread did not stop within 15 s")


@contextlib.contextmanager
def running_broker(
    limits: Limits | None = None, store: Store | None = None, uvloop: bool = False,
    authenticator: Authenticator | None = None, scheme: str = "tcp", **config: Any
) -> Iterator[BrokerThread]:
    """`with running_broker(limits=Limits(...)) as b:` then connect to 127.0.0.1:b.port."""
    connectors = [f"{scheme}://{HOST}:0"]
    cfg = BrokerConfig(name="test", connectors=connectors, limits=limits or Limits(), **config)
    thread = BrokerThread(cfg, store, uvloop, authenticator).start()
    try:
        yield thread
    finally:
        thread.stop()
