"""The broker's state machine (design.md section 1): slave until the lock is ours, then master."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from broker.engine.auth import Authenticator
from broker.ha.master import ConnectorUnavailable, MasterTerm
from broker.ha.roles import ExitCode, Role
from broker.ha.standby import Standby
from config.model import BrokerConfig
from stores.base import StoreError
from stores.lock.backend import LockBackend
from stores.lock.identity import Holder
from stores.lock.registry import create_lock
from stores.lock.takeover import TakeoverAborted

log = logging.getLogger("batonmq.lifecycle")


class Lifecycle:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.role = Role.STARTING
        self.stop_requested = asyncio.Event()
        self.term: MasterTerm | None = None
        self.lock_acquisitions = 0
        self.lock_losses = 0
        self.failovers = 0  # terms that followed an earlier master's epoch
        self.on_commit: Callable[[int, float], None] | None = None  # store commit hook (metrics)
        self.authenticator: Authenticator | None = None  # None: the engine's default (accept all)
        self.standby: Standby | None = None  # while a slave follows the store (the group view shows it)

    def _set_role(self, role: Role, detail: str = "") -> None:
        previous, self.role = self.role, role
        epoch = self.term.epoch if self.term is not None and self.term.epoch else "-"
        log.warning(
            "broker %s: role %s -> %s (epoch %s)%s",
            self.config.name,
            previous.value,
            role.value,
            epoch,
            f": {detail}" if detail else "",
        )

    def request_stop(self) -> None:
        self.stop_requested.set()
        if self.term is not None:
            self.term.abort_takeover.set()

    async def run(self) -> int:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        while True:
            lock = create_lock(self.config.lock.backend, self.config.data_dir)
            self._set_role(Role.SLAVE, "waiting for the lock on " + str(self.config.data_dir / "lock"))
            standby = self.standby = Standby.for_config(self.config)  # a hot standby, if the store has one
            if not await self._wait_for_lock(lock, standby):
                if standby is not None:
                    await standby.close()
                lock.release()
                return ExitCode.OK
            self.lock_acquisitions += 1
            self.standby = None
            code = await self._serve_term(lock, standby)
            if code is not None:
                return code

    async def _serve_term(self, lock: LockBackend, standby: Standby | None = None) -> int | None:
        """Return an exit code, or None to go back to waiting as a slave."""
        self.term = term = MasterTerm(self.config, lock, self.on_commit, standby, self.authenticator)
        self._set_role(Role.RECOVERING, "lock taken")
        try:
            await term.recover()
        except TakeoverAborted:
            self._set_role(Role.STOPPING, "signal while waiting for the previous master to go")
            await term.abandon("stopped")
            lock.release()
            return ExitCode.OK
        except StoreError as exc:
            log.error("broker %s: store refused to open: %s", self.config.name, exc)
            await term.abandon(str(exc))
            lock.release()
            return ExitCode.STORE
        except ConnectorUnavailable as exc:
            # The store is recovered and nothing was served: stop as gracefully as on SIGTERM, so that
            # another broker (whose port may be free) takes over at once instead of after a timeout.
            log.error("broker %s: %s; releasing the lock", self.config.name, exc)
            self._set_role(Role.STOPPING, "connector unavailable")
            await term.stop()
            lock.release()
            return ExitCode.BIND
        assert term.holder is not None
        if term.epoch > 1:
            self.failovers += 1
        self._set_role(Role.MASTER, "holder " + term.holder.describe())
        keepalive = asyncio.ensure_future(term.keepalive())
        stop = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait({keepalive, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stop.done():
            keepalive.cancel()
            self._set_role(Role.STOPPING, "signal")
            await term.stop()
            lock.release()  # last, so a slave finds the store flushed and the release marked
            return ExitCode.OK
        stop.cancel()
        verdict = keepalive.result()
        self.lock_losses += 1
        self._set_role(Role.LOCK_LOST, verdict.reason)
        await term.abandon(verdict.reason)
        lock.release()
        # A file system that stopped answering would hang a slave's lock attempts too: exit.
        if self.config.lock.on_lock_lost == "slave" and verdict.code is ExitCode.LOCK_LOST:
            return None
        return verdict.code

    async def _wait_for_lock(self, lock: LockBackend, standby: Standby | None = None) -> bool:
        """Poll every acquire_interval, and block in a thread meanwhile for an instant wake-up."""
        interval = self.config.lock.acquire_interval
        seen: Holder | None = None
        while not self.stop_requested.is_set():
            if lock.try_acquire():
                return True
            if standby is not None:
                standby.start()  # someone else is master: follow its journal meanwhile (once)
            holder = await asyncio.to_thread(lock.holder)
            if holder != seen:
                seen = holder
                who = holder.describe() if holder is not None else "unknown (no identity written yet)"
                log.warning("broker %s: slave; lock held by %s", self.config.name, who)
            waiter = asyncio.ensure_future(asyncio.to_thread(lock.wait_acquire, interval))
            stop = asyncio.ensure_future(self.stop_requested.wait())
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if waiter.done() and waiter.result():
                return True
        return False
