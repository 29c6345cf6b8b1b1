"""Prometheus metrics and /healthz, served by masters and slaves alike (issue: observability).

Values are read from the lifecycle at scrape time by a custom collector, so a slave reports its
role and the lock's state without any broker running; the commit histograms are fed by the
store's `on_commit` hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from broker.daemon.gcpauses import PAUSES, GcPauses
from broker.ha.roles import Role
from transports.http import HttpServer, Response
from transports.memory import MemoryBudget

if TYPE_CHECKING:
    from broker.engine.spill import TempSpace
    from broker.ha.lifecycle import Lifecycle

log = logging.getLogger("batonmq.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.registry = CollectorRegistry(auto_describe=False)
        self.fsync_seconds = Histogram(
            "batonmq_store_commit_seconds",
            "Time to write and sync one group commit",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "batonmq_store_commit_batch_size",
            "Write requests sharing one group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=self.registry,
        )
        self.store_stats: dict[str, int] = {}
        self.registry.register(_LifecycleCollector(self))

    def on_commit(self, batch: int, seconds: float) -> None:
        self.batch_size.observe(batch)
        self.fsync_seconds.observe(seconds)

    def render(self) -> Response:
        return 200, CONTENT_TYPE, generate_latest(self.registry)

    def health(self) -> Response:
        # Load balancers send traffic to 200 only: the master. Slaves answer 503 with their role.
        role = self.lifecycle.role
        return (200 if role is Role.MASTER else 503), "text/plain", (role.value + "\n").encode()

    async def refresh_store_stats(self, period: float = 2.0) -> None:
        while True:
            term = self.lifecycle.term
            store = term.store if term is not None and self.lifecycle.role is Role.MASTER else None
            if store is not None:
                with contextlib.suppress(Exception):
                    stats = await store.stats()
                    self.store_stats = {
                        "messages": stats.messages,
                        "bytes": stats.bytes,
                        "files": stats.files,
                    }
            await asyncio.sleep(period)


class _LifecycleCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        lifecycle = self.metrics.lifecycle
        term = lifecycle.term
        role = GaugeMetricFamily("batonmq_role", "1 for the broker's current role", labels=["role"])
        for candidate in Role:
            role.add_metric([candidate.value], 1.0 if lifecycle.role is candidate else 0.0)
        yield role
        yield GaugeMetricFamily(
            "batonmq_epoch", "Fencing epoch of this broker's term", value=term.epoch if term else 0
        )
        yield CounterMetricFamily(
            "batonmq_lock_acquisitions", "Times this broker took the lock", value=lifecycle.lock_acquisitions
        )
        yield CounterMetricFamily(
            "batonmq_lock_losses", "Times this broker lost the lock", value=lifecycle.lock_losses
        )
        yield CounterMetricFamily(
            "batonmq_failovers", "Terms that took over from an earlier master", value=lifecycle.failovers
        )
        if term is not None and term.lease is not None and lifecycle.role is Role.MASTER:
            yield GaugeMetricFamily(
                "batonmq_keepalive_age_seconds",
                "Seconds since the last successful keep-alive",
                value=term.lease.age(),
            )
        checks = term.keepalive_thread if term is not None else None
        if checks is not None:
            for name, help_text, value in (
                ("batonmq_lock_checks", "Keep-alive checks of the lock this term", checks.checks),
                ("batonmq_lock_checks_unanswered", "Checks the file system failed (not a loss)",
                 checks.unanswered),
                ("batonmq_lock_checks_slow", "Checks that took longer than one period", checks.slow),
            ):
                yield CounterMetricFamily(name, help_text, value=value)
        if term is not None and "store_recovered" in term.timeline and "lock_taken" in term.timeline:
            seconds = term.timeline["store_recovered"] - term.timeline["lock_taken"]
            yield GaugeMetricFamily(
                "batonmq_recovery_seconds", "Lock taken to store recovered", value=seconds
            )
        yield from self._store()
        yield from self._broker()
        yield from _gc_pauses(PAUSES)

    def _store(self) -> Iterator[Metric]:
        stats = self.metrics.store_stats
        if stats:
            yield GaugeMetricFamily(
                "batonmq_store_messages", "Messages in the store", value=stats["messages"]
            )
            yield GaugeMetricFamily(
                "batonmq_store_bytes", "Bytes the store occupies on disk", value=stats["bytes"]
            )
            yield GaugeMetricFamily("batonmq_store_files", "Files the store occupies", value=stats["files"])
        yield from self._usage()

    def _usage(self) -> Iterator[Metric]:
        """The disk limit (stores/usage.py), as measured at most a quarter second ago."""
        term = self.metrics.lifecycle.term
        usage = term.usage if term is not None and self.metrics.lifecycle.role is Role.MASTER else None
        if usage is None:
            return
        for name, help_text, value in (
            ("batonmq_store_usage_bytes", "Bytes of the store's files, as the usage limit counts them",
             usage.used),
            ("batonmq_store_usage_limit_bytes", "The store usage limit (store.usage_limit)", usage.limit),
            ("batonmq_store_disk_free_bytes", "Free bytes on the data directory's file system", usage.free),
            ("batonmq_store_full", "1 while persistent SENDs are held at the disk limit", int(usage.full)),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)
        yield CounterMetricFamily("batonmq_store_full_refusals",
                                  "Persistent SENDs refused after waiting at the disk limit",
                                  value=usage.refused)

    def _broker(self) -> Iterator[Metric]:
        term = self.metrics.lifecycle.term
        broker = term.broker if term is not None else None
        if broker is None or self.metrics.lifecycle.role is not Role.MASTER:
            return
        stats = broker.stats()
        servers = term.servers if term is not None else []
        yield GaugeMetricFamily(
            "batonmq_connections", "Open client connections", value=stats["connections"]
        )
        closed = CounterMetricFamily(
            "batonmq_connections_closed", "Client connections ended or refused, by reason "
            "(peer: the client left; closed/error: by the broker, without/with ERROR)", labels=["reason"]
        )
        reasons: Counter[str] = Counter()
        for server in servers:
            reasons.update(server.closed)
        for reason, count in sorted(reasons.items()):
            closed.add_metric([reason], count)
        yield closed
        yield CounterMetricFamily(
            "batonmq_destinations_collected", "Idle destinations removed by the destination GC",
            value=broker.destinations.collected,
        )
        turns = next((server.read_turns for server in servers if server.read_turns is not None), None)
        if turns is not None:  # one per event loop: every connector shares it
            yield CounterMetricFamily(
                "batonmq_bulk_reads_deferred", "Times a connection's bulk read waited in line for the "
                "event loop's per-turn read allowance (large frames streaming in)", value=turns.deferred,
            )
        yield from _memory(broker.memory)
        if broker.temp is not None:
            yield from _temp(broker.temp)
        # Destination names can tell a scraper what the applications do; without them each
        # family is one series summed over every destination.
        named = self.metrics.lifecycle.config.metrics_destination_names
        labels = ["destination"] if named else []
        kinds = {
            "enqueued": (CounterMetricFamily, "batonmq_destination_enqueued", "Messages accepted"),
            "dequeued": (CounterMetricFamily, "batonmq_destination_dequeued", "Messages consumed"),
            "in_flight": (GaugeMetricFamily, "batonmq_destination_in_flight", "Dispatched, unacked"),
            "depth": (GaugeMetricFamily, "batonmq_destination_depth", "Messages waiting"),
            "paged": (GaugeMetricFamily, "batonmq_destination_paged",
                      "Waiting messages in the store only, not in memory (docs/paging.md)"),
            "spilled": (GaugeMetricFamily, "batonmq_destination_spilled",
                        "Waiting messages in the temporary store only (docs/paging.md)"),
            "discarded": (CounterMetricFamily, "batonmq_destination_discarded",
                          "Messages dropped for slow non-durable topic subscribers (docs/memory.md)"),
        }
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            key: kind(name, help_text, labels=labels) for key, (kind, name, help_text) in kinds.items()
        }
        destinations = stats["destinations"]
        for key, family in families.items():
            if named:
                for name, values in destinations.items():
                    family.add_metric([name], values.get(key, 0))
            else:
                family.add_metric([], sum(values.get(key, 0) for values in destinations.values()))
        yield from families.values()


def _gc_pauses(pauses: GcPauses) -> Iterator[Metric]:
    """The cyclic collector's pauses (broker/daemon/gcpauses.py): the event loop waits through each."""
    families = (
        CounterMetricFamily("batonmq_gc_collections", "Collections of the cyclic garbage collector",
                            labels=["generation"]),
        CounterMetricFamily("batonmq_gc_pause_seconds", "Seconds the collections held the process",
                            labels=["generation"]),
        GaugeMetricFamily("batonmq_gc_longest_pause_seconds", "The longest collection so far",
                          labels=["generation"]),
    )
    for generation in range(len(pauses.collections)):
        label = [str(generation)]
        families[0].add_metric(label, pauses.collections[generation])
        families[1].add_metric(label, pauses.seconds[generation])
        families[2].add_metric(label, pauses.longest[generation])
    yield from families


def _temp(temp: TempSpace) -> Iterator[Metric]:
    """The temporary store of spilled messages (docs/paging.md)."""
    store = temp.store
    yield GaugeMetricFamily("batonmq_temp_store_bytes", "Bytes of the temporary store's segment files "
                            "(spilled messages)", value=store.bytes)
    yield GaugeMetricFamily("batonmq_temp_store_limit_bytes", "The temporary store's limit "
                            "(limits.temp_usage)", value=temp.usage.limit or 0)
    yield GaugeMetricFamily("batonmq_temp_store_files", "Segment files of the temporary store",
                            value=store.file_count)


def _memory(budget: MemoryBudget) -> Iterator[Metric]:
    """The memory budget (docs/memory.md): its limit, and what is counted in it by pool."""
    yield GaugeMetricFamily("batonmq_memory_budget_bytes", "The memory budget (limits.memory_budget)",
                            value=budget.limit or 0)
    used = GaugeMetricFamily("batonmq_memory_used_bytes", "Bytes counted in the memory budget, by pool "
                             "(inbound: frames being read and transactions; outgoing: paused write "
                             "buffers; destinations: undelivered messages)", labels=["pool"])
    inbound, outgoing = budget.inbound.used, budget.outgoing.used
    used.add_metric(["inbound"], inbound)
    used.add_metric(["outgoing"], outgoing)
    used.add_metric(["destinations"], budget.used - inbound - outgoing)
    yield used
    yield GaugeMetricFamily("batonmq_memory_inbound_limit_bytes", "The inbound pool's limit (half the "
                            "budget)", value=budget.inbound.limit or 0)


async def serve_metrics(metrics: Metrics, host: str, port: int) -> HttpServer:
    server = HttpServer(host, port, {"/metrics": metrics.render, "/healthz": metrics.health})
    await server.start()
    log.info("metrics and /healthz on http://%s:%d", host, server.bound_port)
    return server
