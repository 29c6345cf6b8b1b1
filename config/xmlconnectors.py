"""`<transportConnectors>` of an ActiveMQ XML file: the connectors BatonMQ serves and their options.

Every connector BatonMQ serves speaks STOMP, whatever ActiveMQ's scheme says (tcp:// is OpenWire
there, auto:// detects the protocol): they become tcp://HOST:PORT, ssl://, ws:// or wss://, where
this build serves those. A connector for a protocol BatonMQ does not speak (AMQP, MQTT, ...) is
skipped with a WARNING; if none is left the file is refused rather than falling back to the default
connector, which would listen where the operator never asked.

The URI options config/connector.py honours stay on the connector's URI, as that connector's own
limits (maximumConnections, wireFormat.maxFrameSize) and client-certificate policy; two STOMP
options map to broker-wide [limits] (connectors must then agree); known tuning options are ignored
with a WARNING; anything else is an error, as ActiveMQ itself refuses options it does not use.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit
from xml.etree.ElementTree import Element

from config.connector import CLIENT_AUTH_OPTIONS, LIMIT_OPTIONS, TLS_SCHEMES
from config.errors import ConfigError
from config.placeholders import first_unresolved, unresolved_problem
from config.units import millis_to_seconds
from config.xmlcompat import names
from config.xmltree import Known, Table, XmlMapping, attributes, children, convert, local

# ActiveMQ scheme -> the scheme BatonMQ serves it with.
STOMP_SCHEMES = {
    **dict.fromkeys(["tcp", "nio", "stomp", "stomp+nio", "auto", "auto+nio"], "tcp"),
    **dict.fromkeys(["ssl", "nio+ssl", "stomp+ssl", "stomp+nio+ssl", "auto+ssl", "auto+nio+ssl"], "ssl"),
    "ws": "ws",
    "wss": "wss",
}
OTHER_PROTOCOLS = frozenset({
    "amqp", "amqp+nio", "amqp+ssl", "amqp+nio+ssl", "amqp+ws", "amqp+wss", "mqtt", "mqtt+nio", "mqtt+ssl",
    "mqtt+nio+ssl", "mqtt+ws", "mqtt+wss", "udp", "vm", "http", "https", "multicast", "discovery",
})

# Kept on the URI, under config/connector.py's name for them (ActiveMQ's STOMP transport takes both).
KEPT_OPTIONS = {name: name for name in LIMIT_OPTIONS} | {"transport.maxFrameSize": "wireFormat.maxFrameSize"}
_LIMITS = ("limits",)
BROKER_WIDE: Table = {
    "transport.connectAttemptTimeout": (_LIMITS + ("connect_timeout",), millis_to_seconds),
    "transport.hbGracePeriodMultiplier": (_LIMITS + ("heartbeat_grace",), float),
}
HONOURED = (*KEPT_OPTIONS, *BROKER_WIDE, *CLIENT_AUTH_OPTIONS)
_TUNING = "TCP or JVM tuning with no equivalent here"
_SOCKET_OPTIONS = names("""
    closeAsync tcpNoDelay keepAlive soTimeout soLinger soWriteTimeout socketBufferSize ioBufferSize trace
    typeOfService diffServ dynamicManagement startLogging logWriterName jmxPort useLocalHost connectionTimeout
    daemon minmumWireFormatVersion threadName useInactivityMonitor useKeepAlive keepAliveResponseRequired
    initialDelayTime readCheckTime writeCheckTime""")
IGNORED_OPTIONS = {
    **{f"transport.{name}": _TUNING for name in _SOCKET_OPTIONS},
    **dict.fromkeys(names("""backlog useQueueForAccept soTimeout socketBufferSize trace daemon joinOnStop
                             stackSize dynamicManagement startLogging logWriterName jmxPort connectionTimeout
                             minmumWireFormatVersion maxInactivityDuration
                             maxInactivityDurationInitalDelay"""),
                    _TUNING),
    **dict.fromkeys(["transport.maxDataLength", "wireFormat.maxDataLength"],
                    "a body is bounded by limits.max_frame_size"),
    "transport.defaultHeartBeat": "heart-beats are negotiated only with clients that offer them (STOMP 1.1)",
    **dict.fromkeys(names("transport.enabledProtocols transport.enabledCipherSuites"),
                    "BatonMQ's TLS accepts TLS 1.2 and later with the ciphers of Python's ssl module"),
}
# Any other wireFormat.* option tunes OpenWire's encoding, which a STOMP broker does not have.
_WIRE_FORMAT_PREFIX = "wireFormat."
ONLY_OPTIONS = {
    name: ("false", "a second connection with a client-id in use does not take over the first")
    for name in ("allowLinkStealing", "transport.allowLinkStealing")
}
_NO_CLUSTER_UPDATES = "BatonMQ sends clients no broker list; name every broker in the failover: URL"
CONNECTOR = Known(
    ignored={
        "discoveryUri": "no discovery; clients use a failover: URL",
        **dict.fromkeys(names("""updateClusterClients rebalanceClusterClients updateClusterClientsOnRemove
                                 updateClusterFilter"""), _NO_CLUSTER_UPDATES),
        **dict.fromkeys(names("""enableStatusMonitor auditNetworkProducers displayStackTrace warnOnRemoteClose
                                 disableAsyncDispatch"""), _TUNING),
        **dict.fromkeys(names("maximumProducersAllowedPerConnection maximumConsumersAllowedPerConnection"),
                        "no per-connection producer or consumer cap here"),
    },
    only=ONLY_OPTIONS,
)


def map_connectors(element: Element, out: XmlMapping, served: Collection[str] | None = None) -> None:
    """Map each connector; `served` are the schemes this build serves (None: every STOMP one)."""
    attributes(element, "transportConnectors", set(), out)
    uris: list[str] = []
    seen: dict[str, str] = {}
    for index, child in enumerate(children(element)):
        if local(child.tag) != "transportConnector":
            raise ConfigError(f"transportConnectors/{local(child.tag)}", "unknown element")
        label = f"transportConnector[{child.get('name') or index}]"
        uri = _connector(child, label, out, served)
        if uri is None:
            continue
        # One address, one listener, whatever the scheme or options.
        address = uri.partition("://")[2].partition("?")[0]
        if address in seen:
            raise ConfigError(f"{label}@uri", f"{uri.partition('?')[0]} is already used by {seen[address]}")
        seen[address] = label
        uris.append(uri)
    if not uris:
        raise ConfigError("transportConnectors", "none of them is a connector BatonMQ serves (STOMP, e.g. "
                          "stomp://0.0.0.0:61613); add one, or remove <transportConnectors> for the default "
                          "tcp://0.0.0.0:61616")
    out.set(("connectors",), uris, "transportConnectors")


def _connector(element: Element, label: str, out: XmlMapping, served: Collection[str] | None) -> str | None:
    """Our URI for one <transportConnector>, or None when it is skipped (with a WARNING)."""
    key = f"{label}@uri"
    attrs = attributes(element, label, {"name", "uri"}, out, CONNECTOR)
    if "uri" not in attrs:
        raise ConfigError(key, "missing")
    text = attrs["uri"].strip()
    if (name := first_unresolved(text)) is not None:
        raise ConfigError(key, unresolved_problem(name, text))
    parts: SplitResult = convert(key, text, urlsplit)
    scheme = parts.scheme.lower()
    ours = STOMP_SCHEMES.get(scheme)
    if ours is None:
        if scheme not in OTHER_PROTOCOLS:
            raise ConfigError(key, f"scheme {parts.scheme or 'none'!r} is not served; use stomp, tcp, nio or "
                                   "stomp+nio (BatonMQ speaks STOMP)")
        out.ignore(label, f"{scheme}:// is not STOMP, the one protocol BatonMQ speaks")
        return None
    if served is not None and ours not in served:
        out.ignore(label, f"{ours}:// connectors are not served by this BatonMQ")
        return None
    if parts.path not in ("", "/") and ours in ("ws", "wss"):
        out.ignore(f"{key} path {parts.path}", "BatonMQ's WebSocket connector serves every path")
        parts = parts._replace(path="")
    uri: str = convert(key, text, lambda _: _normalise(parts, ours))
    kept = _map_options(key, parts.query, out, ours)
    return uri + (f"?{urlencode(kept, safe='.')}" if kept else "")


def _normalise(parts: SplitResult, scheme: str) -> str:
    port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    if not parts.hostname or port is None:
        raise ValueError(f"expected SCHEME://HOST:PORT (got {parts.geturl()!r})")
    if parts.path not in ("", "/"):
        raise ValueError(f"a connector has no path (got {parts.path!r})")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}:{port}"


def _map_options(key: str, query: str, out: XmlMapping, scheme: str) -> list[tuple[str, str]]:
    """The options kept on the connector's URI, in their order; the others mapped or reported."""
    kept: list[tuple[str, str]] = []
    for name, text in parse_qsl(query, keep_blank_values=True):
        origin = f"{key}?{name}"
        if name in KEPT_OPTIONS:
            kept.append((KEPT_OPTIONS[name], text))  # config/connector.py checks the value
        elif name in CLIENT_AUTH_OPTIONS:
            if scheme in TLS_SCHEMES:
                kept.append((name, text))
            else:
                out.ignore(origin, "client certificates apply to TLS connectors only")
        elif name in BROKER_WIDE:
            path, convert_ = BROKER_WIDE[name]
            out.agree(path, convert(origin, text, convert_), origin)
        elif name in IGNORED_OPTIONS:
            out.ignore(origin, IGNORED_OPTIONS[name])
        elif name.startswith(_WIRE_FORMAT_PREFIX):
            out.ignore(origin, "OpenWire encoding tuning; STOMP frames are bounded by [limits]")
        elif name in ONLY_OPTIONS:
            harmless, why = ONLY_OPTIONS[name]
            if text.strip().lower() != harmless:
                raise ConfigError(origin, f"only {harmless!r} is accepted: {why}")
        else:
            raise ConfigError(origin, f"unknown connector option (honoured: {', '.join(HONOURED)})")
    return kept
