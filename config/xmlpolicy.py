"""`<destinationPolicy>` of an ActiveMQ XML file: destination GC and memory limits are mapped, the rest
is reported.

    <destinationPolicy><policyMap>
      <policyEntries><policyEntry queue=">" gcInactiveDestinations="true" inactiveTimoutBeforeGC="30000"/>
      </policyEntries>
      <defaultEntry><policyEntry .../></defaultEntry>
    </policyMap></destinationPolicy>

BatonMQ has one policy for every destination. Destination GC (ActiveMQ's gcInactiveDestinations,
inactiveTimoutBeforeGC, default 60 s) maps to limits.destination_gc_idle when set on an entry for
every queue or topic (`>`) or on the default entry; BatonMQ always collects, so a `false` or a
narrower pattern is reported, not honoured. A slow topic subscriber's pending-message limit
(`<pendingMessageLimitStrategy><constantPendingMessageLimitStrategy limit="1000"/>`, as the stock
file sets it for `topic=">"`) maps to limits.topic_pending_limit the same way, and memoryLimit on a
`queue=">"` or default entry to limits.destination_memory_limit, with the store cursor's window
(store.cursor_window) at cursorMemoryHighWaterMark percent of it (default 70), as ActiveMQ starts
paging a destination's persistent messages there (docs/paging.md). Other per-destination
tuning (cursor choice, flow control, dispatch) is ignored with a WARNING each; what would
change which messages a client gets (per-destination dead-letter queues, retroactive topics,
exclusive-by-default) is refused.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from config.errors import ConfigError
from config.units import millis_to_seconds, parse_bool, parse_size
from config.xmlcompat import names
from config.xmltree import Known, XmlMapping, attributes, children, convert, local

_SELECTORS = ("queue", "topic", "tempQueue", "tempTopic")
_GC = "gcInactiveDestinations"
_GC_TIMEOUTS = ("inactiveTimoutBeforeGC", "inactiveTimeoutBeforeGC")  # ActiveMQ accepts both spellings
_GC_IDLE = ("limits", "destination_gc_idle")
_ALWAYS_COLLECTS = "BatonMQ always removes empty, unused destinations after limits.destination_gc_idle"

_HIGH_WATER = "cursorMemoryHighWaterMark"
_MEMORY = ("memoryLimit", _HIGH_WATER)
_DESTINATION_LIMIT = ("limits", "destination_memory_limit")
_WINDOW = ("store", "cursor_window")
_ONE_WINDOW = ('BatonMQ has one destination memory limit and one store cursor window for every queue and '
               'durable subscription: give memoryLimit on a queue=">" or the default entry')

_TUNING = "per-destination tuning with no equivalent in BatonMQ"
_TUNING_ATTRIBUTES = names("""
    storeUsageHighWaterMark maxPageSize maxBrowsePageSize useCache lazyDispatch
    optimizedDispatch enableAudit maxAuditDepth maxProducersToAudit maxQueueAuditDepth reduceMemoryFootprint
    doOptimzeMessageStorage optimizeMessageStoreInFlightLimit minimumMessageSize usePrefetchExtension
    useTopicSubscriptionInflightStats blockedProducerWarningInterval timeBeforeDispatchStarts
    consumersBeforeDispatchStarts strictOrderDispatch messageGroupMapFactoryType gcWithNetworkConsumers
    persistJMSRedelivered sendDuplicateFromStoreToDLQ useConsumerPriority prioritizedMessages maxDestinations
    includeBodyForAdvisory sendAdvisoryIfNoConsumers""")
_FULL = ("a full destination holds its producers back, then answers ERROR (limits.destination_memory_limit, "
         "limits.producer_flow_control_timeout; <systemUsage> sets them for the whole broker)")
POLICY_ENTRY = Known(
    ignored={
        **dict.fromkeys(_TUNING_ATTRIBUTES, _TUNING),
        **dict.fromkeys(names("""advisoryForConsumed advisoryForDelivery advisoryForDiscardingMessages
                                 advisoryForFastProducers advisoryForSlowConsumers advisoryWhenFull"""),
                        "BatonMQ publishes no advisory topics"),
        "producerFlowControl": _FULL,
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
    attrs = attributes(entry, label, {*_SELECTORS, _GC, *_GC_TIMEOUTS, *_MEMORY}, out, POLICY_ENTRY)
    _map_gc(label, attrs, every, out)
    _map_memory(label, attrs, every and entry.get("topic") is None, out)
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


def _map_memory(label: str, attrs: dict[str, str], every_queue: bool, out: XmlMapping) -> None:
    """memoryLimit (and cursorMemoryHighWaterMark, percent) on an entry for every queue, or the default
    entry: the destination's memory limit, and the store cursor's window as ActiveMQ pages at that
    percentage of it."""
    given = [name for name in _MEMORY if name in attrs]
    if not given:
        return
    if "memoryLimit" not in attrs:
        out.ignore(f"{label}@{_HIGH_WATER}", "has no effect without memoryLimit, as in ActiveMQ")
        return
    if not every_queue:
        for name in given:
            out.ignore(f"{label}@{name}", _ONE_WINDOW)
        return
    limit = convert(f"{label}@memoryLimit", attrs["memoryLimit"], parse_size)
    percent = 70  # ActiveMQ's cursorMemoryHighWaterMark default
    if _HIGH_WATER in attrs:
        percent = convert(f"{label}@{_HIGH_WATER}", attrs[_HIGH_WATER], int)
        if not 1 <= percent <= 100:
            raise ConfigError(f"{label}@{_HIGH_WATER}", f"must be a percentage from 1 to 100 (got {percent})")
    out.agree(_DESTINATION_LIMIT, max(1024, limit), f"{label}@memoryLimit")
    out.agree(_WINDOW, max(1024, limit * percent // 100), f"{label}@{given[-1]}")


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
