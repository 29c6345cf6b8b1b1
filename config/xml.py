"""ActiveMQ-style XML (`activemq.xml`) mapped onto BatonMQ settings.

An ActiveMQ file is a Spring context: `<beans>` around a `<broker>` in the namespace
`http://activemq.apache.org/schema/core`. The `<broker>` element is found anywhere in the document and
namespaces are stripped. Parsing goes through defusedxml with DTDs forbidden, so entity expansion
("billion laughs") and external entities are refused with a ConfigError instead of hanging or reading
local files.

Honoured (everything else inside `<broker>` -- destinationPolicy, managementContext, systemUsage,
networkConnectors, destinations, shutdownHooks, ... -- is ignored, as real files carry many):

    <broker brokerName=name dataDirectory=data_dir>
        (persistent must be "true"; useJmx and useShutdownHook are accepted and ignored)
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
    <transportConnectors><transportConnector name=.. uri=../></transportConnectors>
        schemes tcp, nio, stomp, stomp+nio normalised to tcp://HOST:PORT and ssl, nio+ssl,
        stomp+ssl, stomp+nio+ssl to ssl://HOST:PORT (BatonMQ speaks only STOMP); of the `?query`
        options those config/connector.py honours are kept (maximumConnections,
        wireFormat.maxFrameSize, and on ssl transport.needClientAuth/wantClientAuth), the rest
        are dropped, as real files carry many that mean nothing here.
    <sslContext> is refused: BatonMQ reads PEM files (tls.cert, tls.key, tls.ca), not Java key stores.
    <plugins>: simpleAuthenticationPlugin and authorizationPlugin (config/xmlsecurity.py); any
        other authentication or authorization plugin is refused, other plugins are ignored.

On the mapped elements an unknown attribute or child element is an error (`kahaDB@foo`), and so is an
unexpanded Spring placeholder such as `${activemq.data}`: guessing would put the data somewhere else.
Unlike ActiveMQ (default lockKeepAlivePeriod=0, no check) BatonMQ keeps its own keep-alive default
when the attribute is absent; see design.md section 2.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import fromstring

from config.connector import CLIENT_AUTH_OPTIONS, LIMIT_OPTIONS
from config.errors import ConfigError
from config.units import millis_to_seconds, parse_bool, parse_millis, parse_size
from config.xmlsecurity import map_plugins
from config.xmltree import Path_, Table, XmlMapping
from config.xmltree import attributes as _attributes
from config.xmltree import children as _children
from config.xmltree import convert as _convert
from config.xmltree import local as _local


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
_BROKER_IGNORED = frozenset({"useJmx", "useShutdownHook"})  # management and JVM lifecycle only
# ActiveMQ scheme -> ours: every flavour is STOMP here, over TCP or over TLS.
_CONNECTOR_SCHEMES = {"tcp": "tcp", "nio": "tcp", "stomp": "tcp", "stomp+nio": "tcp",
                      "ssl": "ssl", "nio+ssl": "ssl", "stomp+ssl": "ssl", "stomp+nio+ssl": "ssl"}
_KEPT_OPTIONS = {"tcp": frozenset(LIMIT_OPTIONS), "ssl": frozenset(LIMIT_OPTIONS) | set(CLIENT_AUTH_OPTIONS)}
# Broker children that would change where or how messages are stored, or how clients are
# trusted: refusing beats ignoring.
_REFUSED = {
    "persistenceFactory": "journaled JDBC is not supported; use <persistenceAdapter>",
    "sslContext": "Java key stores are not read; remove <sslContext> and give PEM files as tls.cert, "
                  "tls.key and tls.ca (--tls-cert/--tls-key/--tls-ca, BATONMQ_TLS_*, or [tls] in TOML)",
}


def parse_activemq_xml(data: bytes, source: str = "<xml>") -> XmlMapping:
    """Map the `<broker>` element of an ActiveMQ XML document; raise ConfigError on anything wrong."""
    broker = _find_broker(_parse(data, source), source)
    out = XmlMapping()
    _map_broker(broker, out)
    for child in _children(broker):
        name = _local(child.tag)
        if name == "persistenceAdapter":
            _map_persistence(child, out)
        elif name == "transportConnectors":
            _map_connectors(child, out)
        elif name == "plugins":
            map_plugins(child, out)
        elif name in _REFUSED:
            raise ConfigError(name, _REFUSED[name])
    return out


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
    found = [el for el in root.iter() if isinstance(el.tag, str) and _local(el.tag) == "broker"]
    if len(found) != 1:
        what = "no <broker> element" if not found else f"{len(found)} <broker> elements (expected one)"
        raise ConfigError("broker", f"{source}: {what}")
    return found[0]


def _map_broker(broker: Element, out: XmlMapping) -> None:
    attrs = _attributes(broker, "broker", {"brokerName", "dataDirectory", "persistent"} | _BROKER_IGNORED)
    if "persistent" in attrs and not _convert("broker@persistent", attrs["persistent"], parse_bool):
        raise ConfigError("broker@persistent", "must be true: BatonMQ has no memory-only store")
    if "brokerName" in attrs:
        out.set(("name",), attrs["brokerName"], "broker@brokerName")
    if "dataDirectory" in attrs:
        out.set(("data_dir",), attrs["dataDirectory"], "broker@dataDirectory")


def _map_persistence(element: Element, out: XmlMapping) -> None:
    _attributes(element, "persistenceAdapter", set())
    adapters = _children(element)
    names = [_local(child.tag) for child in adapters]
    if len(adapters) != 1 or names[0] not in _ADAPTERS:
        got = ", ".join(f"<{n}>" for n in names) or "nothing"
        expected = "<kahaDB>, <levelDB>, <amqPersistenceAdapter>"
        raise ConfigError("persistenceAdapter", f"must contain exactly one of {expected} (got {got})")
    adapter, name = adapters[0], names[0]
    store_type, specific = _ADAPTERS[name]
    out.set(("store", "type"), store_type, name)
    table = _COMMON | specific
    attrs = _attributes(adapter, name, set(table) | {"directory"})
    if "directory" in attrs:
        # The adapter's directory is where ActiveMQ really keeps the store (and its lock file).
        out.set(("data_dir",), attrs["directory"], f"{name}@directory", replace=True)
    _apply(name, attrs, table, out)
    for child in _children(adapter):
        if _local(child.tag) != "locker":
            raise ConfigError(f"{name}/{_local(child.tag)}", "unknown element (only <locker> is honoured)")
        _map_locker(child, out)


def _map_locker(locker: Element, out: XmlMapping) -> None:
    _attributes(locker, "locker", set())
    kinds = [_local(child.tag) for child in _children(locker)]
    if kinds != ["shared-file-locker"]:
        got = ", ".join(f"<{k}>" for k in kinds) or "nothing"
        raise ConfigError("locker", f"must contain exactly one <shared-file-locker> (got {got})")
    attrs = _attributes(_children(locker)[0], "shared-file-locker", set(_LOCKER_ATTRS))
    _apply("shared-file-locker", attrs, _LOCKER_ATTRS, out)


def _map_connectors(element: Element, out: XmlMapping) -> None:
    _attributes(element, "transportConnectors", set())
    uris: list[str] = []
    seen: dict[str, str] = {}
    for index, child in enumerate(_children(element)):
        if _local(child.tag) != "transportConnector":
            raise ConfigError(f"transportConnectors/{_local(child.tag)}", "unknown element")
        label = f"transportConnector[{child.get('name') or index}]"
        attrs = _attributes(child, label, {"name", "uri"})
        if "uri" not in attrs:
            raise ConfigError(f"{label}@uri", "missing")
        uri = _convert(f"{label}@uri", attrs["uri"], _normalise_connector)
        # One address, one listener, whatever the scheme or options.
        address = uri.partition("://")[2].partition("?")[0]
        if address in seen:
            raise ConfigError(f"{label}@uri", f"{uri.partition('?')[0]} is already used by {seen[address]}")
        seen[address] = label
        uris.append(uri)
    out.set(("connectors",), uris, "transportConnectors")


def _normalise_connector(uri: str) -> str:
    parts = urlsplit(uri.strip())
    scheme = _CONNECTOR_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        known = ", ".join(_CONNECTOR_SCHEMES)
        raise ValueError(f"scheme {parts.scheme or 'none'!r} is not served; use one of {known} (all STOMP)")
    port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    if not parts.hostname or port is None:
        raise ValueError(f"expected SCHEME://HOST:PORT (got {uri!r})")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in _KEPT_OPTIONS[scheme]]
    return f"{scheme}://{host}:{port}" + (f"?{urlencode(kept, safe='.')}" if kept else "")


def _apply(element: str, attrs: dict[str, str], table: Table, out: XmlMapping) -> None:
    for attr, text in attrs.items():
        if attr in table:
            path, convert = table[attr]
            origin = f"{element}@{attr}"
            out.set(path, _convert(origin, text, convert), origin)
