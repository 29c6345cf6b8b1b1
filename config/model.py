"""Pydantic models for everything the broker takes; defaults are the documented ones."""

from __future__ import annotations

import os
import socket
from collections.abc import Collection
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from config.address import Address
from config.connector import ClientAuth, parse_connector_uri
from config.policy import MAX_POLICIES, DestinationPolicy, check_policies
from config.security import AuthenticationSettings, AuthorizationSettings
from config.units import parse_size

StoreType = Literal["journal", "leveldb", "appendlog"]
SyncPolicy = Literal["always", "periodic", "never"]

MiB = 1024 * 1024
# The validation-context key under which a caller passes the connector schemes that exist.
SCHEMES_CONTEXT = "connector_schemes"


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a config file must not be silently ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StoreSettings(_Strict):
    type: StoreType = "journal"
    # As KahaDB's journalDiskSyncStrategy: always = fsync before acknowledging.
    sync: SyncPolicy = "always"
    sync_interval: float = Field(1.0, gt=0, description="seconds between fsyncs under 'periodic'")
    journal_max_file_size: int = Field(32 * MiB, ge=64 * 1024)
    checkpoint_interval: float = Field(5.0, gt=0)
    cleanup_interval: float = Field(30.0, gt=0)
    appendlog_segment_size: int = Field(32 * MiB, ge=64 * 1024)
    appendlog_compact_live_fraction: float = Field(0.5, gt=0, lt=1)
    duplicate_window: int = Field(65536, ge=0, description="producer ids remembered for duplicate detection")
    # Disk limits (ActiveMQ's <storeUsage>, docs/operations.md "Disk limits"). None: the smaller of
    # 100 GiB (ActiveMQ's default) and what the store holds plus 90% of the free space at start.
    usage_limit: int | None = Field(None, ge=1024 * 1024, description="bytes the store may occupy")
    # At the limit a persistent SEND is held this long (ActiveMQ's sendFailIfNoSpaceAfterTimeout),
    # then refused with an ERROR naming the limit; 0 refuses at once (sendFailIfNoSpace).
    usage_timeout: float = Field(30.0, ge=0, le=3600)
    # Producers are also held when the file system has less than this free (other writers fill it too):
    # what is left serves acknowledgements, checkpoints and compaction, which free space.
    min_free: int = Field(32 * MiB, ge=0)
    # Preallocated `<data dir>/reserve`, released by a new master before it writes its epoch, so that a
    # broker killed on a full disk restarts; made again once there is room.
    reserve: int = Field(32 * MiB, ge=0, le=1024 * 1024 * MiB)
    # A record that fails its checksum while intact records follow it (damage, not a torn write):
    # refuse to open, naming file@offset (the default), or copy the damaged bytes to the store's
    # quarantine/ and replay the records after them (stores/*/FORMAT.md, docs/operations.md).
    on_corruption: Literal["refuse", "quarantine"] = "refuse"
    # The store cursor (docs/paging.md): per queue, at most about this many bytes of persistent
    # waiting messages are held in memory; the rest stay in the store, read back in store order.
    cursor_window: int = Field(4 * MiB, ge=1024, description="bytes of each queue's messages held in memory")

    @field_validator("usage_limit", "min_free", "reserve", "cursor_window", mode="before")
    @classmethod
    def _sizes(cls, value: object) -> object:
        # Flags, variables and TOML may spell sizes as ActiveMQ does: "100 gb", "512mb", "4096".
        return parse_size(value) if isinstance(value, str) else value


DEFAULT_KEEPALIVE = 0.5
DEFAULT_LOCK_TIMEOUT = 5.0


class LockSettings(_Strict):
    # Which lock backend decides who is master (stores.lock.registry); one today.
    backend: Literal["shared-file"] = "shared-file"
    acquire_interval: float = Field(0.2, gt=0, le=60)
    keepalive_period: float = Field(DEFAULT_KEEPALIVE, gt=0, le=60)
    # Slow or failing lock I/O is not a lost lock until no check has succeeded for this long; a
    # waiting slave's takeover quiet time is derived from it (docs/lock-protocol.md).
    lock_timeout: float = Field(DEFAULT_LOCK_TIMEOUT, gt=0, le=600)
    # What a master does when the keep-alive fails: exit (distinct code) or go back to waiting.
    on_lock_lost: Literal["exit", "slave"] = "exit"

    @model_validator(mode="before")
    @classmethod
    def _default_timeout_follows_period(cls, data: object) -> object:
        # Unset, the timeout is 5 s or ten periods, whichever is longer: a long period alone
        # must not make the defaults invalid.
        if isinstance(data, dict) and data.get("lock_timeout") is None:
            try:
                period = float(data.get("keepalive_period", DEFAULT_KEEPALIVE))
            except (TypeError, ValueError):
                return data  # the field's own validation names the bad value
            data = {**data, "lock_timeout": max(DEFAULT_LOCK_TIMEOUT, 10 * period)}
        return data

    @model_validator(mode="after")
    def _timeout_covers_two_checks(self) -> LockSettings:
        # One slow check must never be enough: the timeout has to span at least two periods.
        if self.lock_timeout < 2 * self.keepalive_period:
            raise ValueError(
                f"lock_timeout ({self.lock_timeout:g} s) must be at least twice keepalive_period "
                f"({self.keepalive_period:g} s)"
            )
        return self


def default_memory_budget() -> int:
    """limits.memory_budget's default: 20% of physical memory, at least 64 MiB and at most 4 GiB."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 0
    return max(64 * MiB, min(4096 * MiB, physical // 5))


class Limits(_Strict):
    # ActiveMQ's STOMP default bounds a body at 100 MiB (maxDataLength; its frame size is unbounded):
    # a message that ActiveMQ takes must not be refused here. What many such frames in flight at once
    # cost is the memory budget's to bound, not this per-frame limit.
    max_frame_size: int = Field(100 * MiB, ge=1024)
    max_header_count: int = Field(1000, ge=8)
    max_header_length: int = Field(10240, ge=64)
    max_connections: int = Field(1000, ge=1)
    # One address may hold at most this many of them, so that one host (or one attacker) cannot take
    # every slot; well above what a test or benchmark opens from 127.0.0.1. Raise it for clients
    # behind one NAT address.
    max_connections_per_address: int = Field(100, ge=1)
    # A socket that has not completed CONNECT (CONNECTED sent) within this many seconds is closed, as
    # ActiveMQ's transport.connectAttemptTimeout (30 s): idle sockets must not hold connection slots.
    connect_timeout: float = Field(30.0, gt=0, le=3600)
    # How often one scan looks at every connection for a CONNECT timeout or stopped heart-beats.
    connection_scan_interval: float = Field(0.5, gt=0, le=60)
    # One budget for the whole broker's memory (docs/memory.md): undelivered messages, frames being
    # read or waiting to be handled, uncommitted transactions and write buffers, as ActiveMQ's
    # <memoryUsage limit=...>. At it, producers are flow-controlled, then refused with an ERROR.
    # Unset: 20% of physical memory, at least 64 MiB and at most 4 GiB (`budget`).
    memory_budget: int | None = Field(None, ge=1 * MiB)
    # One connection's share: its partial frame, unhandled frames and uncommitted transactions.
    connection_memory_limit: int = Field(32 * MiB, ge=64 * 1024)
    # Undelivered bytes one destination may hold (a share of the budget, never more than it); every
    # message, persistent or not, lives in memory until consumed (persistent ones also on disk).
    destination_memory_limit: int = Field(1024 * MiB, ge=1024)
    # Seconds a producer is held back (its socket not read, its SEND waiting) when a limit is full,
    # before it gets an ERROR naming that limit: ActiveMQ's sendFailIfNoSpaceAfterTimeout; 0 refuses
    # at once, as sendFailIfNoSpace.
    producer_flow_control_timeout: float = Field(10.0, ge=0, le=3600)
    # Messages waiting for one non-durable topic subscriber; past it, or when the topic's share or
    # the budget is full, its oldest are discarded (ActiveMQ's constantPendingMessageLimitStrategy;
    # a slow subscriber must not stop the producer or the broker).
    topic_pending_limit: int = Field(1000, ge=1)
    # Non-persistent messages a queue's memory window has no room for (docs/paging.md, "The
    # temporary store"): "flow-control" holds, then refuses, their producer at the memory limits
    # as it always did; "spill" writes them to the temporary store under <data_dir>/tmp/ and reads
    # them back in order as the window drains (ActiveMQ's default, its temp store).
    non_persistent: Literal["flow-control", "spill"] = "flow-control"
    # Bytes the temporary store may occupy (ActiveMQ's <tempUsage limit=...>, 50 GB by default); at
    # it, producers of spilled messages are flow-controlled, then refused. Unset: the smaller of
    # 50 GiB and half the free space of the data directory's file system when the term starts
    # (half, not the store's 90%: both draw on the same disk).
    temp_usage: int | None = Field(None, ge=1 * MiB)
    max_pending_frames: int = Field(1000, ge=1, description="frames read but not yet handled, per connection")
    # Queues, topics and durable subscriptions together: a client cannot exhaust memory by inventing
    # names. Empty, unused destinations are collected (below), so the limit is never a lockout.
    # ActiveMQ has no such limit. Here each destination adds about 12 objects that Python's cyclic
    # collector walks in every full pass, stalling every client: past about 30,000 one-message queues
    # those passes broke the fairness goal (docs/fairness.md, "Many destinations"). Memory is about
    # 5 KB of RSS per one-message queue, outside memory_budget.
    max_destinations: int = Field(20_000, ge=1)
    # As ActiveMQ's gcInactiveDestinations/inactiveTimoutBeforeGC (60 s): a destination holding no
    # message, with no subscriber and no durable subscription, is removed after this many idle seconds.
    destination_gc_idle: float = Field(60.0, gt=0)
    destination_gc_interval: float = Field(10.0, gt=0, le=3600, description="seconds between GC sweeps")
    # Server side of heart-beat negotiation (STOMP 1.1 section "Heart-beating"), milliseconds.
    heartbeat_send_ms: int = Field(10000, ge=0)
    heartbeat_recv_ms: int = Field(10000, ge=0)
    heartbeat_grace: float = Field(
        2.0, ge=1.0, description="a silent client is dropped after grace × interval"
    )
    # Negotiated intervals are clamped to this: a client offering to beat every 115 days would
    # otherwise never be found dead. The longest silence tolerated is grace × this.
    max_heartbeat_ms: int = Field(60_000, ge=1)
    default_prefetch: int = Field(1000, ge=1)
    max_redeliveries: int = Field(6, ge=0, description="NACKs before a message goes to ActiveMQ.DLQ")
    # Selectors run once per message and come from clients: bounded at SUBSCRIBE (broker/selector.py).
    selector_max_length: int = Field(4096, ge=16, le=1024 * 1024)
    # Parser and evaluator recurse once per level: the cap keeps them far from Python's own limit.
    selector_max_depth: int = Field(32, ge=1, le=64)
    selector_max_cost: int = Field(256, ge=8, description="operations a selector may cost per message")
    selector_max_like_length: int = Field(1024, ge=1)
    # Dispatch, topic fan-out and a connection's frames give the event loop back after this long,
    # so that another client's RECEIPT waits milliseconds, not seconds, behind someone's work.
    work_slice_ms: float = Field(2.0, gt=0, le=1000)

    @field_validator("memory_budget", "connection_memory_limit", "destination_memory_limit", "temp_usage",
                     mode="before")
    @classmethod
    def _size_text(cls, value: object) -> object:
        # "512mb", "64 MiB" from a flag, a variable or TOML; a number stays bytes.
        return parse_size(value) if isinstance(value, str) and not value.strip().isdigit() else value

    @property
    def budget(self) -> int:
        """The memory budget in bytes: the setting, or the default for this machine."""
        return self.memory_budget if self.memory_budget is not None else default_memory_budget()

    @model_validator(mode="after")
    def _shares_within_budget(self) -> Limits:
        if self.memory_budget is not None and self.connection_memory_limit > self.memory_budget:
            raise ValueError(f"connection_memory_limit ({self.connection_memory_limit}) exceeds "
                             f"memory_budget ({self.memory_budget})")
        return self

    @model_validator(mode="after")
    def _heartbeats_within_clamp(self) -> Limits:
        for name in ("heartbeat_send_ms", "heartbeat_recv_ms"):
            if getattr(self, name) > self.max_heartbeat_ms:
                raise ValueError(f"{name} ({getattr(self, name)}) exceeds max_heartbeat_ms "
                                 f"({self.max_heartbeat_ms})")
        return self


class TlsSettings(_Strict):
    """The certificate every TLS connector (ssl://, stomp+ssl://) presents, and whom it trusts.

    Files are PEM. `key` may be left out when `cert` holds the key too. `ca` is the CA bundle that
    client certificates must chain to; it is required once client certificates are asked for.
    The files are read at startup (a bad one is a configuration error) and again at each takeover.
    """

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    # none: no client certificate asked; optional: asked, checked if sent; required: no cert, no TLS.
    client_auth: ClientAuth = "none"


class AdminSettings(_Strict):
    """The admin API and web console (docs/admin.md): their own HTTP listener, off by default.

    Not the metrics port: Prometheus scrapes without credentials, often from another host, while
    the admin API changes messages. Loopback unless `host` says otherwise; with users configured
    every request logs in (HTTP basic) and needs the `admin` right on what it touches.
    """

    port: int | None = Field(None, ge=0, le=65535)
    host: str = Field("127.0.0.1", min_length=1)
    # How often each broker of the group rewrites its record in <data_dir>/members/ (role, standby).
    member_interval: float = Field(2.0, gt=0, le=60)


def _default_name() -> str:
    return socket.gethostname() or "localhost"


class BrokerConfig(_Strict):
    name: str = Field(default_factory=_default_name, min_length=1, max_length=200)
    data_dir: Path = Path("./data")
    store: StoreSettings = Field(default_factory=StoreSettings)
    connectors: list[str] = Field(default_factory=lambda: ["tcp://0.0.0.0:61616"], min_length=1)
    lock: LockSettings = Field(default_factory=LockSettings)
    limits: Limits = Field(default_factory=Limits)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    # Loopback unless configured otherwise: the endpoint has no authentication and names destinations.
    metrics_host: str = Field("127.0.0.1", min_length=1)
    # Off: per-destination series are summed into one series without the destination label.
    metrics_destination_names: bool = True
    admin: AdminSettings = Field(default_factory=AdminSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings, validate_default=True)
    authentication: AuthenticationSettings = Field(default_factory=AuthenticationSettings)
    authorization: AuthorizationSettings = Field(default_factory=AuthorizationSettings)
    # Per-destination policies (`[[policy]]` tables, config/policy.py, docs/memory.md).
    policy: list[DestinationPolicy] = Field(default_factory=list, max_length=MAX_POLICIES)

    _unique_policies = field_validator("policy")(check_policies)

    @field_validator("connectors")
    @classmethod
    def _connectors_are_uris(cls, uris: list[str], info: ValidationInfo) -> list[str]:
        # Which schemes exist is the transports' business (config imports none of ours): a caller
        # that knows them passes them as validation context, e.g. build_config(schemes=...).
        schemes: Collection[str] | None = (info.context or {}).get(SCHEMES_CONTEXT)
        for uri in uris:
            address = parse_connector(uri)  # the URI's options are checked here too
            if schemes is not None and address.scheme not in schemes:
                known = ", ".join(f"{name}://" for name in sorted(schemes))
                raise ValueError(f"connector {uri!r}: scheme must be one of {known} (got {address.scheme!r})")
        return uris

    @field_validator("tls")
    @classmethod
    def _tls_connectors_have_a_certificate(cls, tls: TlsSettings, info: ValidationInfo) -> TlsSettings:
        # Declared after `connectors`, so info.data holds them (absent if they were invalid).
        connectors = [parse_connector_uri(uri) for uri in info.data.get("connectors", ())]
        secure = [c for c in connectors if c.tls]
        if secure and tls.cert is None:
            uri = f"{secure[0].scheme}://{secure[0].address.host}:{secure[0].address.port}"
            raise ValueError(f"connector {uri} needs a certificate: set tls.cert and tls.key "
                             "(--tls-cert, --tls-key)")
        levels = {tls.client_auth} | {c.client_auth for c in secure if c.client_auth is not None}
        if secure and levels - {"none"} and tls.ca is None:
            raise ValueError("client certificates are asked for (client_auth, needClientAuth or "
                             "wantClientAuth): set tls.ca to the CA bundle they must chain to (--tls-ca)")
        return tls


ConnectorAddress = Address


def parse_connector(uri: str) -> Address:
    """Split `scheme://host:port[?options]` (config.connector); raise ValueError. Any scheme passes here."""
    return parse_connector_uri(uri).address


def connector_address(uri: str) -> tuple[str, int]:
    """(host, port) of `scheme://host:port`."""
    address = parse_connector(uri)
    return address.host, address.port
