"""Per-destination policies (config/policy.py) compiled once into what each destination is given.

Each `[[policy]]` becomes one frozen `Resolved` when the broker starts, and so does the broker-wide
default; a destination keeps a reference to one of them, never a copy (a broker may hold
limits.max_destinations of them). Which entry a destination gets is ActiveMQ's rule
(DestinationMap.chooseValue with ActiveMQDestination.compare):

1. an entry whose pattern is the destination's name itself;
2. else, of the entries whose pattern matches the name, the first in ActiveMQ's order: an entry
   whose pattern the other's pattern matches (as a name) comes first, being the narrower
   (`ORDERS.EU.>` before `ORDERS.>` before `>`); otherwise the patterns' text decides, in character
   order (`A.*.C` before `A.B.>`). Where each pattern covers the other (`FOO.*` and `FOO.>`)
   ActiveMQ's pick depends on its hash order; here the text decides then too (`FOO.*`);
3. else the broker-wide settings.

Queue entries apply to queues, topic entries to topics and to their durable subscriptions' queues.
Temporary destinations get the broker-wide settings, as ActiveMQ's queue/topic entries do not match
them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from broker.engine.destinations import QUEUE_PREFIX, TOPIC_PREFIX
from broker.engine.wildcard import Pattern, compile_pattern, matches
from config.model import BrokerConfig
from config.policy import DestinationPolicy
from transports.memory import DESTINATION_LIMIT, FLOW_TIMEOUT

CACHE_SIZE = 4096  # names resolved recently: a destination made again (after GC) is not matched again


@dataclass(frozen=True, slots=True)
class Resolved:
    """What one policy entry (or the broker-wide default) gives a destination."""

    label: str  # 'policy[queue="ORDERS.>"]', or "" for the broker-wide settings
    pattern: str  # the entry's queue or topic pattern, "" for the broker-wide settings
    memory_limit: int
    memory_setting: str  # the configuration key an ERROR names when the limit is reached
    cursor_window: int
    flow_timeout: float  # seconds a producer is held back before it is refused; 0: at once
    flow_setting: str  # the key that sets flow_timeout
    producer_flow_control: bool  # False: refused at once, whatever limits.producer_flow_control_timeout


@dataclass(frozen=True, slots=True)
class _Entry:
    text: str
    pattern: Pattern
    resolved: Resolved


def resolve(policy: DestinationPolicy | None, config: BrokerConfig) -> Resolved:
    limits = config.limits
    if policy is None:
        return Resolved("", "", limits.destination_memory_limit, DESTINATION_LIMIT,
                        config.store.cursor_window, limits.producer_flow_control_timeout, FLOW_TIMEOUT, True)
    label = policy.label
    limit, setting = limits.destination_memory_limit, DESTINATION_LIMIT
    if policy.memory_limit is not None:
        limit, setting = policy.memory_limit, f"{label}.memory_limit"
    timeout, flow = limits.producer_flow_control_timeout, FLOW_TIMEOUT
    if not policy.producer_flow_control:
        timeout, flow = 0.0, f"{label}.producer_flow_control"
    return Resolved(label, policy.pattern, limit, setting, policy.window(config.store.cursor_window), timeout,
                    flow, policy.producer_flow_control)


class Policies:
    """The compiled `[[policy]]` list: `for_destination(name)` is called when a destination is made."""

    def __init__(self, config: BrokerConfig) -> None:
        self.default = resolve(None, config)
        self._queues = _Index([p for p in config.policy if p.queue is not None], config)
        self._topics = _Index([p for p in config.policy if p.topic is not None], config)
        self.configured = bool(config.policy)
        # Bounded: clients invent names, and each one resolved would otherwise stay here for good.
        self._cached: Callable[[str], Resolved] = functools.lru_cache(maxsize=CACHE_SIZE)(self._choose)

    def for_destination(self, destination: str) -> Resolved:
        """The settings of the destination `destination` (/queue/NAME, /topic/NAME, a temporary one)."""
        if not self.configured or not destination.startswith((QUEUE_PREFIX, TOPIC_PREFIX)):
            return self.default
        return self._cached(destination)

    def _choose(self, destination: str) -> Resolved:
        if destination.startswith(QUEUE_PREFIX):
            index, name = self._queues, destination[len(QUEUE_PREFIX):]
        elif destination.startswith(TOPIC_PREFIX):
            index, name = self._topics, destination[len(TOPIC_PREFIX):]
        else:
            return self.default
        chosen = choose(index.matching(name), name)
        return chosen.resolved if chosen is not None else self.default


class _Node:
    """One element of the patterns' tree, as ActiveMQ's DestinationMapNode."""

    __slots__ = ("children", "ends", "rest")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}  # by literal element, and "*"
        self.ends: list[_Entry] = []  # patterns that end here
        self.rest: list[_Entry] = []  # patterns whose next, last element is ">"


class _Index:
    """The entries of one kind in a tree of their elements: a name's matching entries are found by
    walking its elements, each node seen at most once, not by trying every entry (1000 entries
    tried one by one cost 2 ms a name)."""

    def __init__(self, policies: list[DestinationPolicy], config: BrokerConfig) -> None:
        self.root = _Node()
        for policy in policies:
            entry = _Entry(policy.pattern, compile_pattern(policy.pattern), resolve(policy, config))
            node = self.root
            for element in entry.pattern[:-1]:
                node = node.children.setdefault(element, _Node())
            if entry.pattern[-1] == ">":
                node.rest.append(entry)
            else:
                node.children.setdefault(entry.pattern[-1], _Node()).ends.append(entry)

    def matching(self, name: str) -> list[_Entry]:
        found: list[_Entry] = []
        elements = name.split(".")
        pending = [(self.root, 0)]
        while pending:
            node, depth = pending.pop()
            found.extend(node.rest)  # '>' matches what follows, nothing included
            if depth == len(elements):
                found.extend(node.ends)
                continue
            element = elements[depth]
            literal = node.children.get(element)
            if literal is not None:
                pending.append((literal, depth + 1))
            star = node.children.get("*")
            if star is not None and element != "*":  # a literal "*" in a name found that node already
                pending.append((star, depth + 1))
        return found


def choose(candidates: list[_Entry], name: str) -> _Entry | None:
    """ActiveMQ's choice, for the destination `name`, among the entries that match it."""
    best: _Entry | None = None
    for entry in sorted(candidates, key=lambda e: _java_order(e.text)):  # no configuration order
        if entry.text == name:
            return entry  # the exact entry wins over every wildcard
        if best is None or _before(entry, best):
            best = entry
    return best


def _before(a: _Entry, b: _Entry) -> bool:
    """Does `a` sort before `b` in ActiveMQ's order (ActiveMQDestination.compare)?"""
    a_covers = _wild(a) and matches(a.pattern, b.text)
    b_covers = _wild(b) and matches(b.pattern, a.text)
    if a_covers != b_covers:
        return b_covers  # the one the other covers is the narrower
    # Neither covers the other, or each does (FOO.* and FOO.>, where ActiveMQ's pick follows its
    # hash order): the text decides, the same whatever the configuration order.
    return _java_order(a.text) < _java_order(b.text)


def _wild(entry: _Entry) -> bool:
    return any(part in ("*", ">") for part in entry.pattern)


def _java_order(text: str) -> bytes:
    # Java's String.compareTo orders UTF-16 code units; Python's str order is by code point, which
    # differs only past the BMP.
    return text.encode("utf-16-be")
