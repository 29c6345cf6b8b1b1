"""ActiveMQ-style XML (`activemq.xml`) mapped onto BatonMQ settings.

An ActiveMQ file is a Spring context: `<beans>` around a `<broker>` in the namespace
`http://activemq.apache.org/schema/core`. The `<broker>` element is found anywhere in the document and
namespaces are stripped. Parsing goes through defusedxml with DTDs forbidden, so entity expansion
("billion laughs") and external entities are refused with a ConfigError instead of hanging or reading
local files. A user's existing file is meant to load: what maps is mapped, what is harmless here is
ignored with one WARNING line each naming it, and only what would change what clients see, and is not
supported, is an error (docs/activemq-xml.md lists each; config/xmlcompat.py holds the lists).

Honoured:

    <broker brokerName=name dataDirectory=data_dir schedulePeriodForDestinationPurge=ms>
        (persistent must be "true"; -> name, data_dir, limits.destination_gc_interval)
    <persistenceAdapter> with exactly one of
        <kahaDB>                 store.type = journal
        <levelDB>                store.type = leveldb
        <amqPersistenceAdapter>  store.type = appendlog
      common attributes:  directory (-> data_dir, wins over dataDirectory),
                          lockKeepAlivePeriod ms (-> lock.keepalive_period s; 0 is refused)
      kahaDB:   journalMaxFileLength size, journalDiskSyncStrategy always|periodic|never,
                enableJournalDiskSyncs bool (older spelling), journalDiskSyncInterval ms,
                checkpointInterval ms, cleanupInterval ms
      levelDB:  sync bool (-> store.sync always|never)
      amqPersistenceAdapter: maxFileLength size (-> store.appendlog_segment_size), syncOnWrite bool,
                checkpointInterval ms, cleanupInterval ms
      child:    <locker><shared-file-locker lockAcquireSleepInterval=ms/></locker> (-> lock.acquire_interval)
    <transportConnectors>   config/xmlconnectors.py: the STOMP ones (tcp, ssl, ws, wss flavours), with
                            the options config/connector.py honours per connector (maximumConnections,
                            wireFormat.maxFrameSize, client certificates) and a few broker-wide ones
    <destinationPolicy>     config/xmlpolicy.py: each policyEntry's memoryLimit, cursorMemoryHighWaterMark and
                            producerFlowControl (-> [[policy]]), gcInactiveDestinations/inactiveTimoutBeforeGC
    <plugins>               config/xmlsecurity.py: simpleAuthenticationPlugin and authorizationPlugin;
                            any other authentication or authorization plugin is refused
    <systemUsage>           config/xmlusage.py: memoryUsage@limit (-> limits.memory_budget),
                            sendFailIfNoSpace / sendFailIfNoSpaceAfterTimeout (-> the flow-control
                            timeouts, memory and disk); config/xmlstoreusage.py: storeUsage and
                            tempUsage limits
    <sslContext> is refused: BatonMQ reads PEM files (tls.cert, tls.key, tls.ca), not Java key stores.

Spring placeholders `${activemq.base}`, `${activemq.data}`, ... are expanded from the ACTIVEMQ_*
variables ActiveMQ's start script uses (config/placeholders.py); any other placeholder is undefined,
an error unless a flag or BATONMQ_* variable sets that setting. Unlike ActiveMQ (default
lockKeepAlivePeriod=0, no check) BatonMQ keeps its own keep-alive default when the attribute is
absent; see design.md section 2.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import fromstring

from config import xmlcompat
from config.errors import ConfigError
from config.units import millis_to_seconds, parse_bool, parse_millis, parse_size
from config.xmlconnectors import map_connectors
from config.xmlpolicy import map_destination_policy
from config.xmlsecurity import map_plugins
from config.xmltree import Path_, Table, XmlMapping, attributes, children, convert, local
from config.xmlusage import map_system_usage

__all__ = ["XmlMapping", "parse_activemq_xml"]


def _keepalive_seconds(text: str) -> float:
    millis = parse_millis(text)
    if millis == 0:
        # ActiveMQ reads 0 as "never re-check the lock"; that is what lets a replaced or deleted lock
        # file produce two masters, so it cannot be expressed here (design.md section 2).
        raise ValueError(
            "0 would disable the lock keep-alive, which lets two masters run at once; "
            "give a period in ms (BatonMQ's default is 500)"
        )
    return millis / 1000.0


def _sync_strategy(text: str) -> str:
    value = text.strip().lower()
    if value not in ("always", "periodic", "never"):
        raise ValueError(f"expected always, periodic or never (got {text!r})")
    return value


def _sync_flag(text: str) -> str:
    return "always" if parse_bool(text) else "never"


_STORE: Path_ = ("store",)
_COMMON: Table = {
    "lockKeepAlivePeriod": (("lock", "keepalive_period"), _keepalive_seconds),
}
_ADAPTERS: dict[str, tuple[str, Table]] = {
    "kahaDB": (
        "journal",
        {
            "journalMaxFileLength": (_STORE + ("journal_max_file_size",), parse_size),
            "journalDiskSyncStrategy": (_STORE + ("sync",), _sync_strategy),
            "enableJournalDiskSyncs": (_STORE + ("sync",), _sync_flag),
            "journalDiskSyncInterval": (_STORE + ("sync_interval",), millis_to_seconds),
            "checkpointInterval": (_STORE + ("checkpoint_interval",), millis_to_seconds),
            "cleanupInterval": (_STORE + ("cleanup_interval",), millis_to_seconds),
        },
    ),
    "levelDB": ("leveldb", {"sync": (_STORE + ("sync",), _sync_flag)}),
    "amqPersistenceAdapter": (
        "appendlog",
        {
            "maxFileLength": (_STORE + ("appendlog_segment_size",), parse_size),
            "syncOnWrite": (_STORE + ("sync",), _sync_flag),
            "checkpointInterval": (_STORE + ("checkpoint_interval",), millis_to_seconds),
            "cleanupInterval": (_STORE + ("cleanup_interval",), millis_to_seconds),
        },
    ),
}
_LOCKER_ATTRS: Table = {
    "lockAcquireSleepInterval": (("lock", "acquire_interval"), millis_to_seconds),
}
_BROKER_ATTRS: Table = {
    "brokerName": (("name",), str),
    "dataDirectory": (("data_dir",), str),
}
_PURGE = "schedulePeriodForDestinationPurge"


def parse_activemq_xml(
    data: bytes,
    source: str = "<xml>",
    properties: Mapping[str, str] | None = None,
    schemes: Collection[str] | None = None,
) -> XmlMapping:
    """Map the `<broker>` element of an ActiveMQ XML document; raise ConfigError on anything wrong.

    `properties` define the `${...}` placeholders (config.placeholders.activemq_properties);
    `schemes` are the connector schemes this build serves (None: every STOMP one).
    """
    root = _parse(data, source)
    broker = _find_broker(root, source)
    out = XmlMapping(properties=dict(properties or {}))
    _map_broker(broker, out)
    for child in children(broker):
        name = local(child.tag)
        if name == "persistenceAdapter":
            _map_persistence(child, out)
        elif name == "transportConnectors":
            map_connectors(child, out, schemes)
        elif name == "destinationPolicy":
            map_destination_policy(child, out)
        elif name == "plugins":
            map_plugins(child, out)
        elif name == "systemUsage":
            map_system_usage(child, out)
        else:
            _screen_element(name, child, out)
    _report_outside(root, broker, out)
    return out


def _screen_element(name: str, element: Element, out: XmlMapping) -> None:
    """A <broker> child BatonMQ does not map: ignored with a WARNING, left alone, or refused."""
    if name in xmlcompat.LEFT_ALONE:
        return
    if name in xmlcompat.IGNORED_ELEMENTS:
        out.ignore(f"<{name}>", xmlcompat.IGNORED_ELEMENTS[name])
    elif name in xmlcompat.REFUSED_IF_FILLED:
        if children(element):
            raise ConfigError(name, xmlcompat.REFUSED_IF_FILLED[name])
        out.ignore(f"<{name}>", "empty")
    elif name in xmlcompat.REFUSED_ELEMENTS:
        raise ConfigError(name, xmlcompat.REFUSED_ELEMENTS[name])
    else:
        raise ConfigError(name, "unknown element in <broker> (docs/activemq-xml.md lists what BatonMQ reads, "
                                "ignores and refuses)")


def _report_outside(root: Element, broker: Element, out: XmlMapping) -> None:
    """One WARNING per top-level element beside <broker> (Spring beans, imports of jetty.xml, ...)."""
    for element in children(root):
        if element is broker or broker in element.iter():
            continue
        named = [f' {key}="{element.get(key)}"' for key in ("class", "resource", "id") if element.get(key)]
        what = named[0] if named else ""
        out.ignore(f"<{local(element.tag)}{what}>", "outside <broker>; Spring beans, imports and the web "
                                                    "console are not read")


def _parse(data: bytes, source: str) -> Element:
    try:
        # No DOCTYPE at all: ActiveMQ files are validated by XML Schema, never a DTD, and a DTD is
        # where entity bombs live; an external one would also make undefined entities expand to "".
        return fromstring(data, forbid_dtd=True)
    except DTDForbidden:
        problem = "<!DOCTYPE> is not allowed (ActiveMQ files use XML Schema; DTDs carry entity attacks)"
        raise ConfigError("<file>", f"{source}: refused unsafe XML: {problem}") from None
    except DefusedXmlException as exc:
        raise ConfigError("<file>", f"{source}: refused unsafe XML: {type(exc).__name__}") from None
    except ParseError as exc:
        raise ConfigError("<file>", f"{source}: invalid XML: {exc}") from None


def _find_broker(root: Element, source: str) -> Element:
    found = [el for el in root.iter() if isinstance(el.tag, str) and local(el.tag) == "broker"]
    if len(found) != 1:
        what = "no <broker> element" if not found else f"{len(found)} <broker> elements (expected one)"
        raise ConfigError("broker", f"{source}: {what}")
    return found[0]


def _map_broker(broker: Element, out: XmlMapping) -> None:
    allowed = {*_BROKER_ATTRS, "persistent", _PURGE}
    attrs = attributes(broker, "broker", allowed, out, xmlcompat.BROKER)
    if "persistent" in attrs and not convert("broker@persistent", attrs["persistent"], parse_bool):
        raise ConfigError("broker@persistent", "must be true: BatonMQ has no memory-only store")
    _apply("broker", {k: v for k, v in attrs.items() if k in _BROKER_ATTRS}, _BROKER_ATTRS, out)
    if _PURGE in attrs:
        origin = f"broker@{_PURGE}"
        if convert(origin, attrs[_PURGE], parse_millis) == 0:
            # ActiveMQ's 0 (its default) turns GC off; BatonMQ has no such switch.
            out.ignore(origin, "0 would mean never; BatonMQ sweeps every limits.destination_gc_interval")
        else:
            out.put(("limits", "destination_gc_interval"), attrs[_PURGE], origin, millis_to_seconds)


def _map_persistence(element: Element, out: XmlMapping) -> None:
    attributes(element, "persistenceAdapter", set(), out)
    adapters = children(element)
    names = [local(child.tag) for child in adapters]
    if len(adapters) != 1 or names[0] not in _ADAPTERS:
        got = ", ".join(f"<{n}>" for n in names) or "nothing"
        expected = "<kahaDB>, <levelDB>, <amqPersistenceAdapter>"
        raise ConfigError("persistenceAdapter", f"must contain exactly one of {expected} (got {got})")
    adapter, name = adapters[0], names[0]
    store_type, specific = _ADAPTERS[name]
    out.set(("store", "type"), store_type, name)
    table = _COMMON | specific
    attrs = attributes(adapter, name, set(table) | {"directory"}, out, xmlcompat.ADAPTERS[name])
    if "directory" in attrs:
        # The adapter's directory is where ActiveMQ really keeps the store (and its lock file).
        out.put(("data_dir",), attrs["directory"], f"{name}@directory", replace=True)
    _apply(name, attrs, table, out)
    for child in children(adapter):
        if local(child.tag) != "locker":
            raise ConfigError(f"{name}/{local(child.tag)}", "unknown element (only <locker> is honoured)")
        _map_locker(child, out)


def _map_locker(locker: Element, out: XmlMapping) -> None:
    attributes(locker, "locker", set(), out)
    kinds = [local(child.tag) for child in children(locker)]
    if kinds != ["shared-file-locker"]:
        got = ", ".join(f"<{k}>" for k in kinds) or "nothing"
        raise ConfigError("locker", f"must contain exactly one <shared-file-locker> (got {got})")
    attrs = attributes(children(locker)[0], "shared-file-locker", set(_LOCKER_ATTRS), out,
                       xmlcompat.SHARED_FILE_LOCKER)
    _apply("shared-file-locker", attrs, _LOCKER_ATTRS, out)


def _apply(element: str, attrs: dict[str, str], table: Table, out: XmlMapping) -> None:
    for attr, text in attrs.items():
        if attr in table:
            path, convert_ = table[attr]
            out.put(path, text, f"{element}@{attr}", convert_)
