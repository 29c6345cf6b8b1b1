"""One term as master: from the moment the lock is ours until we give it up or lose it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from broker.core import Broker
from broker.lease import Lease
from broker.standby import Standby
from config.model import BrokerConfig
from stores.base import Store
from stores.fencing import LockFence, bump_epoch
from stores.heartbeat import HeartbeatWriter
from stores.lock import DirectoryLock, Holder
from stores.registry import create_store
from stores.takeover import previous_master_gone
from transports.registry import create_server
from transports.server import StompServer

log = logging.getLogger("batonmq.master")


# How many periods the loop waits for a keep-alive check that never returns (a hard-mounted NFS
# server gone away); the check's own I/O time is held to one period.
KEEPALIVE_BACKSTOP = 4


# A live master beats every keep-alive period plus the time its check takes; on a loaded host
# that overruns, so a silent previous master is presumed gone only after two periods of quiet.
def takeover_margin(keepalive_period: float) -> float:
    return keepalive_period


class MasterTerm:
    def __init__(
        self,
        config: BrokerConfig,
        lock: DirectoryLock,
        on_commit: Callable[[int, float], None] | None = None,
        standby: Standby | None = None,
    ) -> None:
        self.config = config
        self.standby = standby  # the slave's warm state (journal store only), used by recover()
        self.on_commit = on_commit
        self.lock = lock
        self.epoch = 0
        self.holder: Holder | None = None
        self.heartbeat: HeartbeatWriter | None = None
        self.fence: LockFence | None = None
        self.lease: Lease | None = None
        self.store: Store | None = None
        self.broker: Broker | None = None
        self.servers: list[StompServer] = []
        self.timeline: dict[str, float] = {}  # phase -> wall time, for the failover benchmark
        self.abort_takeover = threading.Event()  # set on SIGTERM while waiting for the old master
        self.fenced = asyncio.Event()  # the broker saw the fence fail (a store write, an expired lease)

    def _mark(self, phase: str) -> None:
        self.timeline[phase] = time.time()

    async def recover(self) -> None:
        """Fence the old master, wait until it is gone, recover the store, then bind connectors."""
        data_dir = self.config.data_dir
        self._mark("lock_taken")
        self.epoch = await asyncio.to_thread(bump_epoch, data_dir)
        # "since" in `batonmq status` and the slaves' logs: when this term began, not the process.
        since = self.timeline["lock_taken"]
        self.holder = Holder(self.config.name, socket.gethostname(), os.getpid(), since, self.epoch)
        await asyncio.to_thread(self.lock.publish, self.holder)
        period = self.config.lock.keepalive_period
        reason = await asyncio.to_thread(
            previous_master_gone,
            data_dir,
            socket.gethostname(),
            period,
            takeover_margin(period),
            abort=self.abort_takeover,
            sleep=self.abort_takeover.wait,
        )
        log.info("broker %s: epoch %d, safe to take over: %s", self.config.name, self.epoch, reason)
        self.heartbeat = HeartbeatWriter(data_dir, self.holder, period=period)
        await asyncio.to_thread(self.heartbeat.beat)
        self.fence = LockFence(self.lock, self.epoch)
        self.lease = Lease(self.config.lock.keepalive_period, self._verify)
        self.lease.renew()
        self.store = create_store(data_dir, self.config.store, self.fence)
        self.store.on_commit = self.on_commit
        warm = self.standby is not None and await self.standby.hand_over(self.store)
        recovered = await self.store.open()
        self._mark("store_recovered")
        broker = self.standby.adopt(self.store, recovered) if warm and self.standby is not None else None
        await self._close_standby()
        if broker is None:
            broker = Broker(self.config, self.store)
            await broker.start(recovered)
        self.broker = broker
        self.broker.lease = self.lease
        self.broker.on_fence_lost = self.fenced.set
        await self._bind()
        self._mark("connector_bound")
        # One parseable line for the failover benchmark: wall-clock times of each phase.
        phases = " ".join(f"{name}={at:.6f}" for name, at in self.timeline.items())
        log.info("broker %s: timeline epoch=%d %s", self.config.name, self.epoch, phases)

    async def _close_standby(self) -> None:
        if self.standby is not None:
            await self.standby.close()
            self.standby = None

    async def _bind(self) -> None:
        for uri in self.config.connectors:
            assert self.broker is not None
            server = create_server(uri, self.broker.handler_factory, self.config.limits)
            await server.start()
            self.servers.append(server)
            log.info("broker %s: STOMP connector listening on %s", self.config.name, uri)

    def _verify(self) -> None:
        assert self.fence is not None
        self.lock.verify()
        self.fence.check()

    def _keepalive_once(self) -> float:
        """Verify, renew the lease and beat (on a worker thread); return how long the I/O took."""
        assert self.lease is not None and self.heartbeat is not None
        started = time.monotonic()
        self.lease.renew()
        self.heartbeat.beat()
        return time.monotonic() - started

    async def keepalive(self) -> str:
        """Re-verify the lock every period; return why it was lost (never returns while it holds)."""
        period = self.config.lock.keepalive_period
        while True:
            try:
                await asyncio.wait_for(self.fenced.wait(), timeout=period)
                lost = self.lease.lost if self.lease is not None else None
                return lost or "the store refused a write: the fencing epoch or the lock file changed"
            except TimeoutError:
                pass
            try:
                # The backstop only catches a call that never returns; a busy event loop must not
                # count against the check, so the check times its own I/O.
                took = await asyncio.wait_for(
                    asyncio.to_thread(self._keepalive_once), timeout=KEEPALIVE_BACKSTOP * period
                )
            except TimeoutError:
                return f"keep-alive check did not return within {KEEPALIVE_BACKSTOP * period:g} s"
            except Exception as exc:  # any doubt means the lock is lost
                return str(exc) or type(exc).__name__
            if took > period:
                # A hung or failing file system (an NFS lease expiring) shows first as slow I/O.
                return f"keep-alive I/O took {took:.2f} s, longer than the {period:g} s period"

    async def stop(self, grace: float = 2.0) -> None:
        """Graceful: stop listening, let connections finish, flush the store, mark release."""
        await self._close_standby()
        await asyncio.gather(*(server.stop(grace) for server in self.servers), return_exceptions=True)
        if self.broker is not None:
            await self.broker.stop()
        if self.store is not None:
            await self.store.close()
        if self.heartbeat is not None:
            await asyncio.to_thread(self.heartbeat.mark_released)
            self.heartbeat.close()

    async def abandon(self, reason: str) -> None:
        """Lock lost: refuse everything at once, drop every client, write nothing more."""
        await self._close_standby()
        if self.lease is not None and self.lease.lost is None:
            self.lease.lost = reason
        if self.broker is not None:
            self.broker.fence_lost()
        for server in self.servers:
            await server.close_all_connections()
        await asyncio.gather(*(server.stop(0) for server in self.servers), return_exceptions=True)
        if self.store is not None:
            try:
                await self.store.close()
            except Exception as exc:  # expected: the fence refuses the final flush
                log.debug("store close after lock loss: %s", exc)
        if self.heartbeat is not None:
            self.heartbeat.close()
