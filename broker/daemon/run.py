"""`batonmq start`: run one broker in the foreground until a signal or lock loss."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys

# Imported now, not on the first connection (the engine imports it lazily, to break the cycle
# between engine and session): so its import does not stall the loop while clients are served, and
# its objects are frozen out of the collector with the rest of the start-up (tune_gc).
import broker.engine.session  # noqa: F401
from broker.daemon.admin import start_admin
from broker.daemon.gcpauses import PAUSES
from broker.daemon.heaptrim import trim_periodically
from broker.daemon.metrics import Metrics, serve_metrics
from broker.engine.auth import Authenticator
from broker.engine.users import build_authenticator
from broker.ha.lifecycle import Lifecycle
from broker.ha.roles import ExitCode
from config.model import BrokerConfig
from transports import eventloop

log = logging.getLogger("batonmq.daemon")

# The collector's defaults (700, 10, 10) suit programs that drop what they allocate. A broker keeps
# what it holds (queued messages, their index entries), so with them a young collection ran every
# few dozen SENDs and, while queues grew, a full one at every 25% of growth, each walking every
# message held: 8 full collections took 0.4 s of a 40,000-message run, pauses of tens of ms each.
# The middle generation is collected every 2 young collections, not 10: it then holds at most 2 x
# 10,000 survivors instead of 10 x, so its pauses are a third to a half as long (the collector's own
# CPU time, gcpauses.py: longest 46-50 -> 14-16 ms beside 10,000 destinations, 30-42 -> 23-27 ms
# under a persistent flood) for the same CPU in all: each survivor is walked there once either way.
GC_THRESHOLDS = (10_000, 2, 10)
# Seconds a thread waits for the GIL before the running one is made to give it up (Python's default
# is 5 ms). The loop thread is busy while a hostile load runs; the store's writer thread takes the
# GIL several times per group commit (around each write and fsync), so with 5 ms each a receipted
# SEND waited tens of ms for its commit. The running thread is only interrupted when another waits.
SWITCH_INTERVAL = 0.0005


def run(config: BrokerConfig, authenticator: Authenticator | None = None) -> int:
    """Run the broker; return the process exit code (see broker.ha.roles.ExitCode).

    `authenticator` is what `load_authenticator(config)` built (None: every client is let in).
    """
    tune_gc()
    sys.setswitchinterval(SWITCH_INTERVAL)
    code = eventloop.run(_main(config, authenticator))
    # The last line of every run, whatever ended it: what a supervisor's log shows first.
    log.warning("broker %s: stopped, exit %d", config.name, code)
    return code


def tune_gc() -> None:
    """Collect less often, and leave the start-up objects (modules, classes, settings: tens of
    thousands, garbage never) out of every later collection. Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    PAUSES.install()


def load_authenticator(config: BrokerConfig) -> Authenticator | None:
    """The authenticator of `config.authentication`, users files read (and plain passwords hashed)
    now, before the loop starts: ConfigError names a file that cannot be used (exit 2)."""
    return build_authenticator(config.authentication)


async def _main(config: BrokerConfig, authenticator: Authenticator | None) -> int:
    lifecycle = Lifecycle(config)
    lifecycle.authenticator = authenticator  # the master passes it to each term's broker
    _install_signal_handlers(lifecycle)
    log.info(
        "broker %s: starting (store %s, data %s, pid %d)",
        config.name,
        config.store.type,
        config.data_dir.resolve(),
        os.getpid(),
    )
    try:
        metrics_tasks = [*await _start_metrics(lifecycle), asyncio.ensure_future(PAUSES.log_slow()),
                         asyncio.ensure_future(trim_periodically())]
    except OSError as exc:
        # Checked before the lock (broker.daemon.preflight); this is the port taken since.
        log.error("broker %s: cannot serve metrics on %s:%s: %s", config.name, config.metrics_host,
                  config.metrics_port, exc.strerror or exc)
        return ExitCode.CONFIG
    try:
        metrics_tasks += await start_admin(lifecycle, authenticator)
    except OSError as exc:
        log.error("broker %s: cannot serve the admin API on %s:%s: %s", config.name, config.admin.host,
                  config.admin.port, exc.strerror or exc)
        for task in metrics_tasks:
            task.cancel()
        return ExitCode.CONFIG
    try:
        return await lifecycle.run()
    except Exception:
        log.exception("broker %s: fatal error", config.name)
        return ExitCode.FAILED
    finally:
        for task in metrics_tasks:
            task.cancel()


async def _start_metrics(lifecycle: Lifecycle) -> list[asyncio.Task[None]]:
    """Serve /metrics and /healthz from the start, so slaves report their role too."""
    config = lifecycle.config
    if config.metrics_port is None:
        return []
    metrics = Metrics(lifecycle)
    lifecycle.on_commit = metrics.on_commit
    server = await serve_metrics(metrics, config.metrics_host, config.metrics_port)
    return [asyncio.ensure_future(metrics.refresh_store_stats()),
            asyncio.ensure_future(server.stop_when_cancelled())]


def _install_signal_handlers(lifecycle: Lifecycle) -> None:
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            # A second signal means "now": skip the graceful path (the OS drops our locks on exit).
            print("batonmq: second signal, exiting at once", file=sys.stderr, flush=True)
            log.warning("broker %s: stopped, exit %d", lifecycle.config.name, ExitCode.FORCED)
            os._exit(ExitCode.FORCED)
        log.warning("broker %s: %s received, stopping", lifecycle.config.name, signal.Signals(signum).name)
        lifecycle.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
