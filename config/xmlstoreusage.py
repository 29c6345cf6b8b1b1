"""`<systemUsage>` of an ActiveMQ XML file: the disk limits (storeUsage, tempUsage) and what a
producer meets at them (sendFailIfNoSpace, sendFailIfNoSpaceAfterTimeout).

    <systemUsage>
      <systemUsage sendFailIfNoSpaceAfterTimeout="3000">
        <memoryUsage><memoryUsage percentOfJvmHeap="70"/></memoryUsage>
        <storeUsage><storeUsage limit="100 gb"/></storeUsage>
        <tempUsage><tempUsage limit="50 gb"/></tempUsage>
      </systemUsage>
    </systemUsage>

    storeUsage@limit                store.usage_limit (a size: "100 gb", "512mb", bytes)
    tempUsage@limit                 store.temp_usage_limit
    sendFailIfNoSpaceAfterTimeout   store.usage_timeout (ms -> s): held that long, then ERROR
    sendFailIfNoSpace="true"        store.usage_timeout = 0 (refused at once), unless the timeout
                                    above is given too, which then says how long (as in ActiveMQ)

ActiveMQ without either attribute blocks a producer for as long as the store stays full; BatonMQ
holds it at most store.usage_timeout (30 s by default), said with a WARNING when the file asks
for the block. `<memoryUsage>` is the memory budget's and passed over here; `percentLimit` (a
share of the disk) is reported, not honoured: without a limit BatonMQ takes 90% of the free space
anyway (docs/operations.md, "Disk limits"). `<producerSystemUsage>` and `<consumerSystemUsage>`
(split budgets) are left alone.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from config.errors import ConfigError
from config.units import millis_to_seconds, parse_bool, parse_size
from config.xmltree import Known, XmlMapping, attributes, children, local

_FAIL = "sendFailIfNoSpace"
_FAIL_AFTER = "sendFailIfNoSpaceAfterTimeout"
_TIMEOUT = ("store", "usage_timeout")
_LIMITS = {"storeUsage": ("store", "usage_limit"), "tempUsage": ("store", "temp_usage_limit")}
_PERCENT = "a share of the disk is not read; give limit=, or leave it out (90% of the free space)"
_USAGE = Known(ignored={
    "percentLimit": _PERCENT,
    "total": "BatonMQ has one store limit",
    "usagePortion": "BatonMQ has one store limit",
    "pollingTime": "BatonMQ measures the store every 0.25 s",
})
_SYSTEM = Known(ignored={"name": "a label only"})
_MEMORY = "memoryUsage"  # the memory budget's


def map_system_usage(element: Element, out: XmlMapping) -> None:
    attributes(element, "systemUsage", set(), out)
    for inner in children(element):
        if local(inner.tag) != "systemUsage":
            raise ConfigError(f"systemUsage/{local(inner.tag)}", "unknown element (expected <systemUsage>)")
        _map_inner(inner, out)


def _map_inner(element: Element, out: XmlMapping) -> None:
    label = "systemUsage/systemUsage"
    attrs = attributes(element, label, {_FAIL, _FAIL_AFTER}, out, _SYSTEM)
    _map_timeout(label, attrs, out)
    for child in children(element):
        name = local(child.tag)
        if name == _MEMORY:
            continue
        if name not in _LIMITS:
            out.ignore(f"{label}/{name}", "BatonMQ limits the store and the temporary store only")
            continue
        for usage in children(child):
            if local(usage.tag) != name:
                raise ConfigError(f"{name}/{local(usage.tag)}", f"unknown element (expected <{name}>)")
            limit = attributes(usage, name, {"limit"}, out, _USAGE)
            if "limit" in limit:
                out.put(_LIMITS[name], limit["limit"], f"{name}@limit", parse_size)


def _map_timeout(label: str, attrs: dict[str, str], out: XmlMapping) -> None:
    if _FAIL_AFTER in attrs:
        out.put(_TIMEOUT, attrs[_FAIL_AFTER], f"{label}@{_FAIL_AFTER}", millis_to_seconds)
        return
    if _FAIL not in attrs:
        return
    origin = f"{label}@{_FAIL}"
    try:
        fail_at_once = parse_bool(attrs[_FAIL])
    except ValueError as exc:
        raise ConfigError(origin, str(exc)) from None
    if fail_at_once:
        out.set(_TIMEOUT, 0.0, origin)
    else:
        out.ignore(origin, "a full store holds a SEND at most store.usage_timeout, then answers ERROR")
