"""The disk limits of an ActiveMQ `<systemUsage>`: storeUsage and tempUsage (config/xmlusage.py reads
the element itself, the memory limit and the timeouts, and hands these two over).

    <storeUsage><storeUsage limit="100 gb"/></storeUsage>   store.usage_limit ("100 gb", "512mb", bytes)
    <tempUsage><tempUsage limit="50 gb"/></tempUsage>       limits.temp_usage (the same spellings)

sendFailIfNoSpace(AfterTimeout) on the inner <systemUsage> also sets STORE_TIMEOUT: ActiveMQ without
either attribute blocks a producer for as long as the store stays full; BatonMQ holds it at most
store.usage_timeout (30 s by default). `percentLimit` (a share of the disk) is reported, not
honoured: without a limit BatonMQ takes 90% of the free space anyway (docs/operations.md, "Disk
limits"). tempUsage bounds the temporary store that non-persistent messages spill to with
limits.non_persistent = "spill" (docs/paging.md); whether they spill is that setting's, not the
element's: with the default, "flow-control", they stay in memory and the limit goes unused.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from config.errors import ConfigError
from config.units import parse_size
from config.xmltree import Known, XmlMapping, attributes, children, local

STORE_TIMEOUT = ("store", "usage_timeout")
_LIMITS = {"storeUsage": ("store", "usage_limit"), "tempUsage": ("limits", "temp_usage")}
DISK_USAGES = frozenset(_LIMITS)
_PERCENT = "a share of the disk is not read; give limit=, or leave it out ({} of the free space)"
_SHARE = {"storeUsage": "90%", "tempUsage": "half"}  # the defaults without a limit
_USAGE = {name: Known(ignored={
    "percentLimit": _PERCENT.format(share),
    "total": "BatonMQ has one limit per usage",
    "usagePortion": "BatonMQ has one limit per usage",
    "pollingTime": "BatonMQ measures the store every 0.25 s",
}) for name, share in _SHARE.items()}


def map_disk_usage(name: str, element: Element, out: XmlMapping) -> None:
    """<storeUsage> or <tempUsage>: the bean of the same name inside, with its limit."""
    attributes(element, name, set(), out)
    for usage in children(element):
        if local(usage.tag) != name:
            raise ConfigError(f"{name}/{local(usage.tag)}", f"unknown element (expected <{name}>)")
        limit = attributes(usage, name, {"limit"}, out, _USAGE[name])
        if "limit" in limit:
            out.put(_LIMITS[name], limit["limit"], f"{name}@limit", parse_size)
