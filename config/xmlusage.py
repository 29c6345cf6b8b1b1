"""ActiveMQ's `<systemUsage>` mapped onto the memory budget (docs/memory.md, docs/activemq-xml.md).

    <systemUsage>
      <systemUsage sendFailIfNoSpace="true" sendFailIfNoSpaceAfterTimeout="3000">
        <memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>
        <storeUsage>...</storeUsage> <tempUsage>...</tempUsage>
      </systemUsage>
    </systemUsage>

Honoured: memoryUsage@limit -> limits.memory_budget; storeUsage and tempUsage (the disk limits)
through config/xmlstoreusage.py. sendFailIfNoSpaceAfterTimeout (ms) is ActiveMQ's one setting for
every usage, so it sets both limits.producer_flow_control_timeout (memory) and store.usage_timeout
(disk); sendFailIfNoSpace="true" without a timeout sets both to 0 (refuse at once). ActiveMQ's
default, a producer blocked for as long as it takes, has no equivalent: a producer here waits at
most the timeout (10 s for memory, 30 s for disk, unless set), so sendFailIfNoSpace="false" is
reported, not honoured. memoryUsage@percentOfJvmHeap has no JVM heap to be a percent of: reported,
the default (a fifth of the machine's memory) applies.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from config.errors import ConfigError
from config.units import millis_to_seconds, parse_bool, parse_size
from config.xmlstoreusage import DISK_USAGES, STORE_TIMEOUT, map_disk_usage
from config.xmltree import Known, XmlMapping, attributes, children, convert, local

_LIMITS = "limits"
_TIMEOUT = (_LIMITS, "producer_flow_control_timeout")
_NO_FOREVER = ("ActiveMQ blocks a producer until there is room; BatonMQ holds it back at most "
               "limits.producer_flow_control_timeout (memory, 10 s unless set) or store.usage_timeout "
               "(disk, 30 s unless set), then sends ERROR")
_USAGE = Known(ignored={
    "checkLimitsLogLevel": "limits are logged when a producer is refused",
    "name": "a label for ActiveMQ's JMX",
})
_MEMORY = Known(ignored={
    "percentOfJvmHeap": "there is no JVM heap; limits.memory_budget's default (20% of RAM) applies",
    "name": "a label for ActiveMQ's JMX",
})
_SCHEDULER = "BatonMQ has no job scheduler"


def map_system_usage(element: Element, out: XmlMapping) -> None:
    """The outer <systemUsage> holds one inner <systemUsage> (Spring's property and its bean)."""
    attributes(element, "systemUsage", set(), out)
    inner = children(element)
    if len(inner) != 1 or local(inner[0].tag) != "systemUsage":
        got = ", ".join(f"<{local(c.tag)}>" for c in inner) or "nothing"
        raise ConfigError("systemUsage", f"must contain exactly one <systemUsage> (got {got})")
    _map_usage(inner[0], out)


def _map_usage(usage: Element, out: XmlMapping) -> None:
    label = "systemUsage/systemUsage"
    attrs = attributes(usage, label, {"sendFailIfNoSpace", "sendFailIfNoSpaceAfterTimeout"}, out, _USAGE)
    fail_text = attrs.get("sendFailIfNoSpace")
    if "sendFailIfNoSpaceAfterTimeout" in attrs:
        for key in (_TIMEOUT, STORE_TIMEOUT):
            out.put(key, attrs["sendFailIfNoSpaceAfterTimeout"], f"{label}@sendFailIfNoSpaceAfterTimeout",
                    millis_to_seconds)
    elif fail_text is not None:
        if convert(f"{label}@sendFailIfNoSpace", fail_text, parse_bool):
            for key in (_TIMEOUT, STORE_TIMEOUT):
                out.set(key, 0.0, f"{label}@sendFailIfNoSpace")
        else:
            out.ignore(f"{label}@sendFailIfNoSpace", _NO_FOREVER)
    for child in children(usage):
        name = local(child.tag)
        if name == "memoryUsage":
            _map_memory(child, out)
        elif name in DISK_USAGES:
            map_disk_usage(name, child, out)
        elif name == "jobSchedulerUsage":
            out.ignore(f"{label}/{name}", _SCHEDULER)
        else:
            raise ConfigError(f"{label}/{name}", "unknown element (memoryUsage, storeUsage and tempUsage "
                                                 "are what <systemUsage> holds)")


def _map_memory(element: Element, out: XmlMapping) -> None:
    attributes(element, "memoryUsage", set(), out)
    inner = children(element)
    if len(inner) != 1 or local(inner[0].tag) != "memoryUsage":
        raise ConfigError("memoryUsage", "must contain exactly one <memoryUsage limit=\"...\"/>")
    attrs = attributes(inner[0], "memoryUsage/memoryUsage", {"limit"}, out, _MEMORY)
    if "limit" in attrs:
        out.put((_LIMITS, "memory_budget"), attrs["limit"], "memoryUsage@limit", parse_size)
