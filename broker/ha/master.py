"""One term as master: from the moment the lock is ours until we give it up or lose it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.engine.auth import Authenticator
from broker.engine.core import Broker
from broker.engine.spill import TempSpace
from broker.ha.keepalive import KeepAliveThread
from broker.ha.lease import Lease
from broker.ha.roles import ExitCode
from broker.ha.standby import Standby
from broker.ha.watchdog import Watchdog
from config.errors import BrokerError, ConfigError
from config.model import BrokerConfig
from stores import reserve
from stores.base import Fence, Store
from stores.lock.backend import LockBackend
from stores.lock.identity import Holder
from stores.registry import check_marker, create_store
from stores.temp.files import TempStore, default_limit, directory_for, wipe_all
from stores.usage import StoreUsage, free_bytes, size_text
from transports.registry import create_server
from transports.server import StompServer

log = logging.getLogger("batonmq.master")

# After the lock timeout fires, how long the graceful stop may take before the watchdog ends the
# process (threads stuck in a hung file system cannot be joined).
EXIT_BOUND = 2.0


def takeover_margin(keepalive_period: float) -> float:
    """Added to the quiet time: covers the gap between a master's last lease check and its
    last frame, our own poll interval and clock-rate differences (docs/lock-protocol.md)."""
    return keepalive_period


class ConnectorUnavailable(BrokerError):
    """A connector could not listen when this broker became master (the port taken meanwhile, an
    address gone, a TLS file unreadable since the start). Only the master binds, so this can only
    be found after the lock was taken."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"cannot listen on {uri}: {reason}")
        self.uri = uri


@dataclass(frozen=True)
class Verdict:
    """Why a term ended without a signal, and the exit code that says so."""

    reason: str
    code: ExitCode


class MasterTerm:
    def __init__(
        self,
        config: BrokerConfig,
        lock: LockBackend,
        on_commit: Callable[[int, float], None] | None = None,
        standby: Standby | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.config = config
        self.standby = standby  # the slave's warm state (a store that can be followed), used by recover()
        self.on_commit = on_commit
        self.lock = lock
        self.authenticator = authenticator  # None: the engine's default (everyone is anonymous)
        self.epoch = 0
        self.holder: Holder | None = None
        self.fence: Fence | None = None
        self.lease: Lease | None = None
        self.store: Store | None = None
        self.usage: StoreUsage | None = None  # the store's disk usage and limit, from recovery on
        self.temp: TempSpace | None = None  # the temporary store (limits.non_persistent = "spill")
        self.broker: Broker | None = None
        self.servers: list[StompServer] = []
        self.timeline: dict[str, float] = {}  # phase -> wall time, for the failover benchmark
        self.abort_takeover = threading.Event()  # set on SIGTERM while waiting for the old master
        self.keepalive_thread: KeepAliveThread | None = None
        self.watchdog: Watchdog | None = None
        self._loop = asyncio.get_running_loop()
        self.verdict: asyncio.Future[Verdict] = self._loop.create_future()

    def _mark(self, phase: str) -> None:
        self.timeline[phase] = time.time()

    async def recover(self) -> None:
        """Fence the old master, wait until it is gone, recover the store, then bind connectors."""
        data_dir = self.config.data_dir
        self._mark("lock_taken")
        # A directory of another store type is refused before anything changes in it, the reserve
        # included; then, before anything is written this term, a broker killed on a full disk
        # needs room for its epoch and the store's first record (stores/reserve.py).
        await asyncio.to_thread(check_marker, data_dir, self.config.store.type)
        await asyncio.to_thread(reserve.release, data_dir)
        self.epoch = await asyncio.to_thread(self.lock.bump_epoch)
        # "since" in `batonmq status` and the slaves' logs: when this term began, not the process.
        since = self.timeline["lock_taken"]
        self.holder = Holder(self.config.name, socket.gethostname(), os.getpid(), since, self.epoch)
        await asyncio.to_thread(self.lock.publish, self.holder)
        period, timeout = self.config.lock.keepalive_period, self.config.lock.lock_timeout
        reason = await asyncio.to_thread(
            self.lock.previous_master_gone,
            socket.gethostname(),
            timeout,
            takeover_margin(period),
            self.abort_takeover,
        )
        log.info("broker %s: epoch %d, safe to take over: %s", self.config.name, self.epoch, reason)
        self.fence = self.lock.fence()
        self.lease = Lease(timeout)
        first = time.monotonic()
        # The first beat; checks run from here on, recovery included.
        await asyncio.to_thread(self.lock.start_beating, self.holder, timeout)
        self.lease.renew(first)
        self._start_checks()
        self.store = create_store(data_dir, self.config.store, self.fence)
        self.store.on_commit = self.on_commit
        warm = self.standby is not None and await self.standby.hand_over(self.store)
        recovered = await self.store.open()
        self._mark("store_recovered")
        self.usage = StoreUsage(self.store, self.config.store, data_dir)
        await self.usage.start()
        broker = self.standby.adopt(self.store, recovered) if warm and self.standby is not None else None
        await self._close_standby()
        if self.config.limits.non_persistent == "spill":
            self.temp = await self._open_temp()
        if broker is None:
            broker = Broker(self.config, self.store)
            broker.temp = self.temp  # before recovery makes the queues
            await broker.start(recovered)
        else:
            broker.temp = self.temp
            await broker.start()  # recovered already, while a slave: starts its housekeeping only
        if self.authenticator is not None:
            broker.authenticator = self.authenticator
        self.broker = broker
        self.broker.usage = self.usage
        self.broker.lease = self.lease
        self.broker.on_fence_lost = self._broker_fenced
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
        assert self.broker is not None
        # All built (TLS files read) before any listens: a certificate gone unreadable since
        # startup fails the takeover before a client is served on another connector.
        servers = [self._server(uri) for uri in self.config.connectors]
        for uri, server in zip(self.config.connectors, servers, strict=True):
            try:
                await server.start()
            except OSError as exc:
                # asyncio's message repeats the address; the errno alone says why.
                reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                raise ConnectorUnavailable(uri, reason) from None
            self.servers.append(server)
            log.info("broker %s: STOMP connector listening on %s", self.config.name, uri)

    def _server(self, uri: str) -> StompServer:
        assert self.broker is not None
        try:
            return create_server(uri, self.broker.handler_factory, self.config.limits, self.config.tls,
                                 self.broker.memory)
        except ConfigError as exc:
            raise ConnectorUnavailable(uri, f"{exc.key}: {exc.problem}") from None

    def _start_checks(self) -> None:
        assert self.lease is not None
        period = self.config.lock.keepalive_period
        self.keepalive_thread = KeepAliveThread(self.lock.check, self.lease, period, self._lost_from_thread)
        self.watchdog = Watchdog(self.lease, self._timeout_from_thread, ExitCode.LOCK_TIMEOUT,
                                 exit_bound=EXIT_BOUND, grace=max(2 * period, 0.5))
        self.keepalive_thread.start()
        self.watchdog.start()

    async def _stop_checks(self) -> bool:
        """Stop the keep-alive and the watchdog; False if a check is still stuck in I/O."""
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.keepalive_thread is None:
            return True
        self.keepalive_thread.stop()
        period = self.config.lock.keepalive_period
        return await asyncio.to_thread(self.keepalive_thread.join, max(1.0, 2 * period))

    # -- verdicts: from the keep-alive thread, the watchdog, or the broker on the loop --------------

    def _lost_from_thread(self, reason: str) -> None:
        self._refuse_now(reason)
        self._loop.call_soon_threadsafe(self._conclude, reason, ExitCode.LOCK_LOST)

    def _timeout_from_thread(self, reason: str) -> None:
        self._refuse_now(reason)
        self._loop.call_soon_threadsafe(self._conclude, reason, ExitCode.LOCK_TIMEOUT)

    def _refuse_now(self, reason: str) -> None:
        # Set from the checking thread itself, so the loop answers nobody from this instant on,
        # not only once it gets round to the callback.
        if self.lease is not None and self.lease.lost is None:
            self.lease.lost = reason

    def _broker_fenced(self) -> None:
        lease = self.lease
        if lease is not None and lease.expired():
            # Answering has stopped already (the broker is fenced). A process resumed after a pause
            # finds its lease old before its keep-alive has spoken: give that a moment, so that a
            # "no" is reported as the loss it is rather than as a timeout.
            reason = f"no lock check succeeded for {lease.age():.1f} s (lock_timeout {lease.duration:g} s)"
            grace = max(2 * self.config.lock.keepalive_period, 0.5)
            self._loop.call_later(grace, self._conclude, reason, ExitCode.LOCK_TIMEOUT)
            return
        lost = lease.lost if lease is not None else None
        self._conclude(lost or "the store refused a write: the fencing epoch or the lock file changed",
                       ExitCode.LOCK_LOST)

    def _conclude(self, reason: str, code: ExitCode) -> None:
        if not self.verdict.done():
            self.verdict.set_result(Verdict(reason, code))
        if self.broker is not None:
            self.broker.fence_lost()  # refuse every SEND and RECEIPT from now on

    async def keepalive(self) -> Verdict:
        """Wait until the term ends without a signal: lock lost, or lock timeout."""
        return await asyncio.shield(self.verdict)

    async def _open_temp(self) -> TempSpace:
        """The temporary store, empty: non-persistent messages never outlive their broker."""
        data_dir = self.config.data_dir
        await asyncio.to_thread(wipe_all, data_dir)  # the previous master is gone (recover() waited)
        store = TempStore(directory_for(data_dir, self.config.name))
        await store.open()
        limit = self.config.limits.temp_usage
        if limit is None:
            limit = default_limit(await asyncio.to_thread(free_bytes, store.directory))
        log.info("broker %s: temporary store %s, limit %s (limits.temp_usage)", self.config.name,
                 store.directory, size_text(limit))
        return TempSpace(store, limit)

    async def _close_temp(self) -> None:
        if self.temp is not None:
            try:
                await self.temp.store.close()
            except OSError as exc:
                log.warning("broker %s: removing the temporary store failed: %s", self.config.name, exc)

    async def stop(self, grace: float = 2.0) -> None:
        """Graceful: stop listening, let connections finish, flush the store, mark release."""
        checks_stopped = await self._stop_checks()
        await self._close_standby()
        await asyncio.gather(*(server.stop(grace) for server in self.servers), return_exceptions=True)
        if self.broker is not None:
            await self.broker.stop()
        await self._close_temp()
        if self.usage is not None:
            await self.usage.close()
        if self.store is not None:
            await self.store.close()
        if checks_stopped:
            await asyncio.to_thread(self.lock.end_term, True)
        else:
            log.warning("broker %s: a lock check is stuck in I/O: not marking the release; a "
                        "successor waits out the heartbeat instead", self.config.name)

    async def abandon(self, reason: str) -> None:
        """Lock lost: refuse everything at once, drop every client, write nothing more."""
        self._refuse_now(reason)
        if self.watchdog is not None:
            self.watchdog.stop()  # disarms only if it has not fired
        if self.keepalive_thread is not None:
            self.keepalive_thread.stop()
        await self._close_standby()
        if self.broker is not None:
            self.broker.fence_lost()
        for server in self.servers:
            await server.close_all_connections()
        await asyncio.gather(*(server.stop(0) for server in self.servers), return_exceptions=True)
        if self.temp is not None:
            self.temp.store.abandon()  # its files are the next master's to wipe
        if self.usage is not None:
            await self.usage.close()
        if self.store is not None:
            try:
                await self.store.close()
            except Exception as exc:  # expected: the fence refuses the final flush
                log.debug("store close after lock loss: %s", exc)
        # Its descriptor is closed only once the keep-alive thread is done with it.
        if self.keepalive_thread is None or self.keepalive_thread.join(0):
            self.lock.end_term(clean=False)
