"""The disk limits of an ActiveMQ `<systemUsage>`: storeUsage and tempUsage (config/xmlusage.py reads
the element itself, the memory limit and the timeouts, and hands these two over).

    <storeUsage><storeUsage limit="100 gb"/></storeUsage>   store.usage_limit ("100 gb", "512mb", bytes)
    <tempUsage><tempUsage limit="50 gb"/></tempUsage>       reported: there is no temporary store

sendFailIfNoSpace(AfterTimeout) on the inner <systemUsage> also sets STORE_TIMEOUT: ActiveMQ without
either attribute blocks a producer for as long as the store stays full; BatonMQ holds it at most
store.usage_timeout (30 s by default). `percentLimit` (a share of the disk) is reported, not
honoured: without a limit BatonMQ takes 90% of the free space anyway (docs/operations.md, "Disk
limits"). BatonMQ spills no non-persistent message to a temporary store: they stay in memory under
limits.memory_budget, where their producers are flow-controlled and then refused (docs/paging.md),
so <tempUsage> is reported.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from config.errors import ConfigError
from config.units import parse_size
from config.xmltree import Known, XmlMapping, attributes, children, local

STORE_TIMEOUT = ("store", "usage_timeout")
_LIMITS = {"storeUsage": ("store", "usage_limit")}
_NO_TEMP_STORE = ("BatonMQ has no temporary store: non-persistent messages stay in memory under "
                  "limits.memory_budget, where their producers are flow-controlled, then refused")
DISK_USAGES = frozenset({*_LIMITS, "tempUsage"})
_PERCENT = "a share of the disk is not read; give limit=, or leave it out (90% of the free space)"
_USAGE = Known(ignored={
    "percentLimit": _PERCENT,
    "total": "BatonMQ has one store limit",
    "usagePortion": "BatonMQ has one store limit",
    "pollingTime": "BatonMQ measures the store every 0.25 s",
})


def map_disk_usage(name: str, element: Element, out: XmlMapping) -> None:
    """<storeUsage> or <tempUsage>: the bean of the same name inside, with its limit."""
    if name == "tempUsage":
        out.ignore("<tempUsage>", _NO_TEMP_STORE)
        return
    attributes(element, name, set(), out)
    for usage in children(element):
        if local(usage.tag) != name:
            raise ConfigError(f"{name}/{local(usage.tag)}", f"unknown element (expected <{name}>)")
        limit = attributes(usage, name, {"limit"}, out, _USAGE)
        if "limit" in limit:
            out.put(_LIMITS[name], limit["limit"], f"{name}@limit", parse_size)
