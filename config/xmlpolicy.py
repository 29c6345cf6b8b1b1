"""`<destinationPolicy>` of an ActiveMQ XML file: destination GC and memory limits are mapped, the rest
is reported.

    <destinationPolicy><policyMap>
      <policyEntries><policyEntry queue=">" gcInactiveDestinations="true" inactiveTimoutBeforeGC="30000"/>
      </policyEntries>
      <defaultEntry><policyEntry .../></defaultEntry>
    </policyMap></destinationPolicy>

Each entry for a queue or topic pattern becomes a `[[policy]]` (config/policy.py): memoryLimit is its
memory_limit, and its cursor_window is cursorMemoryHighWaterMark percent of that (default 70), as
ActiveMQ starts paging a destination's persistent messages there (docs/paging.md);
producerFlowControl="false" refuses that destination's producers at once instead of holding them
back. A composite pattern (`A.>,B.>`) becomes one policy per part. The default entry's memoryLimit
sets the broker-wide limits.destination_memory_limit and store.cursor_window (every destination no
entry matches), and temporary-destination entries are reported: temporary destinations take the
broker-wide settings.

Destination GC (ActiveMQ's gcInactiveDestinations, inactiveTimoutBeforeGC, default 60 s) maps to
limits.destination_gc_idle when set on an entry for every queue or topic (`>`) or on the default
entry; BatonMQ always collects, so a `false` or a narrower pattern is reported, not honoured. A slow
topic subscriber's pending-message limit (`<pendingMessageLimitStrategy>
<constantPendingMessageLimitStrategy limit="1000"/>`, as the stock file sets it for `topic=">"`) maps
to limits.topic_pending_limit the same way. Other per-destination tuning (cursor choice, dispatch,
prefetches) is ignored with a WARNING each; what would change which messages a client gets
(per-destination dead-letter queues, retroactive topics, exclusive-by-default) is refused.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from config.errors import ConfigError
from config.security import check_pattern
from config.units import millis_to_seconds, parse_bool, parse_size
from config.xmlcompat import names
from config.xmltree import Known, XmlMapping, attributes, children, convert, local

_SELECTORS = ("queue", "topic", "tempQueue", "tempTopic")
_GC = "gcInactiveDestinations"
_GC_TIMEOUTS = ("inactiveTimoutBeforeGC", "inactiveTimeoutBeforeGC")  # ActiveMQ accepts both spellings
_GC_IDLE = ("limits", "destination_gc_idle")
_ALWAYS_COLLECTS = "BatonMQ always removes empty, unused destinations after limits.destination_gc_idle"

_HIGH_WATER = "cursorMemoryHighWaterMark"
_FLOW = "producerFlowControl"
_MEMORY = ("memoryLimit", _HIGH_WATER)
_POLICY = (*_MEMORY, _FLOW)
_DESTINATION_LIMIT = ("limits", "destination_memory_limit")
_WINDOW = ("store", "cursor_window")
_TEMPORARY = ("temporary destinations take the broker-wide limits.destination_memory_limit, "
              "store.cursor_window and limits.producer_flow_control_timeout")
_DEFAULT_FLOW = ('a default entry stands for the broker-wide settings, and those always hold producers back '
                 '(limits.producer_flow_control_timeout); give it on queue=">" and topic=">" entries')

_TUNING = "per-destination tuning with no equivalent in BatonMQ"
_TUNING_ATTRIBUTES = names("""
    storeUsageHighWaterMark maxPageSize maxBrowsePageSize useCache lazyDispatch
    optimizedDispatch enableAudit maxAuditDepth maxProducersToAudit maxQueueAuditDepth reduceMemoryFootprint
    doOptimzeMessageStorage optimizeMessageStoreInFlightLimit minimumMessageSize usePrefetchExtension
    useTopicSubscriptionInflightStats blockedProducerWarningInterval timeBeforeDispatchStarts
    consumersBeforeDispatchStarts strictOrderDispatch messageGroupMapFactoryType gcWithNetworkConsumers
    persistJMSRedelivered sendDuplicateFromStoreToDLQ useConsumerPriority prioritizedMessages maxDestinations
    includeBodyForAdvisory sendAdvisoryIfNoConsumers""")
_FULL = ("a full destination holds its producers back, then answers ERROR "
         "(limits.producer_flow_control_timeout, which <systemUsage> sets for the whole broker; "
         'producerFlowControl="false" refuses at once)')
POLICY_ENTRY = Known(
    ignored={
        **dict.fromkeys(_TUNING_ATTRIBUTES, _TUNING),
        **dict.fromkeys(names("""advisoryForConsumed advisoryForDelivery advisoryForDiscardingMessages
                                 advisoryForFastProducers advisoryForSlowConsumers advisoryWhenFull"""),
                        "BatonMQ publishes no advisory topics"),
        "sendFailIfNoSpace": _FULL,
        "sendFailIfNoSpaceAfterTimeout": _FULL,
        **dict.fromkeys(names("queuePrefetch topicPrefetch durableTopicPrefetch queueBrowserPrefetch"),
                        "a subscription's prefetch is its activemq.prefetchSize header, else "
                        "limits.default_prefetch"),
        **dict.fromkeys(names("expireMessagesPeriod maxExpirePageSize"),
                        "expired messages are dropped when met"),
    },
    only={
        "allConsumersExclusiveByDefault": ("false", "exclusive consumers are not supported"),
        "alwaysRetroactive": ("false", "retroactive topic subscriptions are not supported"),
    },
)
_SLOW = ("a slow non-durable topic subscriber loses its oldest waiting messages past "
         "limits.topic_pending_limit or when memory is full; nothing else is configurable")
_PENDING = "pendingMessageLimitStrategy"
_PENDING_LIMIT = ("limits", "topic_pending_limit")
IGNORED_CHILDREN = {
    "messageEvictionStrategy": _SLOW,
    "slowConsumerStrategy": _SLOW,
    **dict.fromkeys(names("pendingQueuePolicy pendingSubscriberPolicy pendingDurableSubscriberPolicy"),
                    "ActiveMQ's cursor choice; every waiting message is in memory here (and on disk if "
                    "persistent)"),
    "dispatchPolicy": "messages go round-robin to a queue's consumers, and in order to a topic's subscribers",
    "messageGroupMapFactory": _TUNING,
    "networkBridgeFilterFactory": "no network of brokers here",
}
# Child element -> (the one inner element that matches BatonMQ's behaviour, why anything else is refused).
ONLY_CHILDREN = {
    "deadLetterStrategy": ("sharedDeadLetterStrategy", "BatonMQ dead-letters to ActiveMQ.DLQ only"),
    "subscriptionRecoveryPolicy": ("noSubscriptionRecoveryPolicy",
                                   "a new topic subscriber would be sent earlier messages; not supported"),
}


def map_destination_policy(element: Element, out: XmlMapping) -> None:
    attributes(element, "destinationPolicy", set(), out)
    for policy_map in children(element):
        _expect(policy_map, "policyMap", "destinationPolicy")
        attributes(policy_map, "policyMap", set(), out)
        for part in children(policy_map):
            kind = local(part.tag)
            if kind not in ("policyEntries", "defaultEntry"):
                expected = "unknown element (expected <policyEntries>, <defaultEntry>)"
                raise ConfigError(f"policyMap/{kind}", expected)
            for entry in children(part):
                _expect(entry, "policyEntry", kind)
                _map_entry(entry, out, default=kind == "defaultEntry")


def _expect(element: Element, name: str, parent: str) -> None:
    if local(element.tag) != name:
        raise ConfigError(f"{parent}/{local(element.tag)}", f"unknown element (expected <{name}>)")


def _map_entry(entry: Element, out: XmlMapping, default: bool) -> None:
    selector = next(((name, entry.get(name)) for name in _SELECTORS if entry.get(name) is not None), None)
    label = "policyEntry[default]"
    if not default and selector is not None:
        label = f'policyEntry[{selector[0]}="{selector[1]}"]'
    every = default or (selector is not None and selector[1] == ">")
    attrs = attributes(entry, label, {*_SELECTORS, _GC, *_GC_TIMEOUTS, *_POLICY}, out, POLICY_ENTRY)
    _map_gc(label, attrs, every, out)
    if default or selector is None:
        _map_default_memory(label, attrs, out)
    elif selector[0] in ("queue", "topic"):
        _map_policy(label, selector[0], attrs, out)
    else:
        for name in _POLICY:
            if name in attrs:
                out.ignore(f"{label}@{name}", _TEMPORARY)
    for child in children(entry):
        name = local(child.tag)
        if name in ONLY_CHILDREN:
            _check_only_child(f"{label}/{name}", child, out)
        elif name == _PENDING:
            _map_pending(f"{label}/{name}", child, every and entry.get("queue") is None, out)
        elif name in IGNORED_CHILDREN:
            out.ignore(f"{label}/{name}", IGNORED_CHILDREN[name])
        else:
            raise ConfigError(f"{label}/{name}", "unknown element")


def _check_only_child(key: str, element: Element, out: XmlMapping) -> None:
    harmless, why = ONLY_CHILDREN[local(element.tag)]
    inner = [local(child.tag) for child in children(element)]
    if inner != [harmless]:
        got = ", ".join(f"<{name}>" for name in inner) or "nothing"
        raise ConfigError(key, f"only <{harmless}> is accepted (got {got}): {why}")
    out.ignore(key, "what BatonMQ does anyway; its options are not read")


def _map_pending(key: str, element: Element, every: bool, out: XmlMapping) -> None:
    """constantPendingMessageLimitStrategy@limit on an entry for every topic -> topic_pending_limit."""
    inner = children(element)
    if len(inner) != 1 or local(inner[0].tag) != "constantPendingMessageLimitStrategy" or not every:
        why = 'only <constantPendingMessageLimitStrategy limit=N/> on a topic=">" or default entry is read; '
        out.ignore(key, why + _SLOW)
        return
    attrs = attributes(inner[0], f"{key}/constantPendingMessageLimitStrategy", {"limit"}, out)
    if "limit" in attrs:
        limit = convert(f"{key}@limit", attrs["limit"], int)
        if limit <= 0:  # ActiveMQ's -1: no limit; here memory still evicts the oldest at the budget
            out.ignore(f"{key}@limit", "no limit is not offered: " + _SLOW)
        else:
            out.agree(_PENDING_LIMIT, limit, f"{key}@limit")


def _memory(label: str, attrs: dict[str, str], out: XmlMapping) -> tuple[int, int] | None:
    """memoryLimit and the cursor window at cursorMemoryHighWaterMark percent of it (ActiveMQ pages a
    destination's persistent messages there), or None without a memoryLimit."""
    if "memoryLimit" not in attrs:
        if _HIGH_WATER in attrs:
            out.ignore(f"{label}@{_HIGH_WATER}", "has no effect without memoryLimit, as in ActiveMQ")
        return None
    limit = convert(f"{label}@memoryLimit", attrs["memoryLimit"], parse_size)
    percent = 70  # ActiveMQ's cursorMemoryHighWaterMark default
    if _HIGH_WATER in attrs:
        percent = convert(f"{label}@{_HIGH_WATER}", attrs[_HIGH_WATER], int)
        if not 1 <= percent <= 100:
            raise ConfigError(f"{label}@{_HIGH_WATER}", f"must be a percentage from 1 to 100 (got {percent})")
    limit = max(1024, limit)
    return limit, max(1024, limit * percent // 100)


def _map_default_memory(label: str, attrs: dict[str, str], out: XmlMapping) -> None:
    """The default entry: every destination no entry matches, so the broker-wide settings."""
    memory = _memory(label, attrs, out)
    if memory is not None:
        given = [name for name in _MEMORY if name in attrs]
        out.agree(_DESTINATION_LIMIT, memory[0], f"{label}@memoryLimit")
        out.agree(_WINDOW, memory[1], f"{label}@{given[-1]}")
    if _FLOW in attrs:
        out.ignore(f"{label}@{_FLOW}", _DEFAULT_FLOW)


def _map_policy(label: str, kind: str, attrs: dict[str, str], out: XmlMapping) -> None:
    """An entry for a queue or topic pattern: one [[policy]] per pattern, if it sets anything."""
    settings: dict[str, Any] = {}
    memory = _memory(label, attrs, out)
    if memory is not None:
        settings["memory_limit"], settings["cursor_window"] = memory
    if _FLOW in attrs:
        settings["producer_flow_control"] = convert(f"{label}@{_FLOW}", attrs[_FLOW], parse_bool)
    if not settings:
        return
    for pattern in (part.strip() for part in attrs[kind].split(",")):  # ActiveMQ's composite form
        convert(f"{label}@{kind}", pattern, check_pattern)
        if any(given.get(kind) == pattern for given in out.values.get("policy", ())):
            # ActiveMQ keeps one of the two, which one depending on its hash order.
            raise ConfigError(f"{label}@{kind}", f"{pattern!r} is given by an earlier {kind} entry too; "
                                                 "merge the two")
        out.append(("policy",), {kind: pattern, **settings})


def _map_gc(label: str, attrs: dict[str, str], every: bool, out: XmlMapping) -> None:
    timeouts = [name for name in _GC_TIMEOUTS if name in attrs]
    if len(timeouts) > 1:
        raise ConfigError(f"{label}@{timeouts[1]}", f"sets the same setting as {label}@{timeouts[0]}")
    timeout = timeouts[0] if timeouts else None
    if _GC not in attrs:
        if timeout is not None:
            out.ignore(f"{label}@{timeout}", f'has no effect without {_GC}="true", as in ActiveMQ')
        return
    origin = f"{label}@{_GC}"
    if not convert(origin, attrs[_GC], parse_bool):
        out.ignore(origin, _ALWAYS_COLLECTS)
    elif not every:
        out.ignore(origin, _ALWAYS_COLLECTS + ', the same for all: give the time on a ">" entry')
    else:
        origin = f"{label}@{timeout}" if timeout else origin
        idle = convert(origin, attrs[timeout], millis_to_seconds) if timeout else 60.0  # ActiveMQ's default
        out.agree(_GC_IDLE, idle, origin)
        return
    if timeout is not None:
        out.ignore(f"{label}@{timeout}", f"{_GC} is not in force for it")
