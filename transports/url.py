"""Broker URLs as ActiveMQ clients write them, and the pure pieces of the reconnect policy.

Accepted forms (ActiveMQ "Failover Transport Reference"):

    tcp://host:port                  stomp://host:port              tcp://[::1]:61616
    ssl://host:port                  stomp+ssl://host:port          (TLS; see transports/tls.py)
    failover:(tcp://h1:p1,tcp://h2:p2)?initialReconnectDelay=100&randomize=false
    failover:tcp://h1:p1,tcp://h2:p2                                failover://(ssl://h1:p1)

Options use ActiveMQ's camelCase names and defaults and are case-sensitive, as there. Unknown options
are errors rather than ignored, so a typo cannot silently leave a client retrying forever. ActiveMQ
attaches a `?query` after an unparenthesised list to the last nested URI; we have no per-broker
options, so here it always means failover options.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from config.address import split_address
from config.errors import BrokerError

_SCHEMES = ("tcp", "stomp", "ssl", "stomp+ssl")
TLS_SCHEMES = ("ssl", "stomp+ssl")
_MAX_URL_LENGTH = 8192
_MAX_BROKERS = 64
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class UrlError(BrokerError):
    """A broker URL that cannot be used; the message names the offending part."""


@dataclass(frozen=True, slots=True)
class FailoverOptions:
    """ActiveMQ FailoverTransport options (times in milliseconds, -1 = unlimited)."""

    initial_reconnect_delay: int = 10
    max_reconnect_delay: int = 30000
    use_exponential_back_off: bool = True
    # ActiveMQ's URL spells this reconnectDelayExponent (the only setter in FailoverTransport.java);
    # older docs and ours call it backOffMultiplier. Both names are accepted.
    back_off_multiplier: float = 2.0
    randomize: bool = True
    # -1 retries forever, 0 never reconnects, n > 0 gives up after n failed attempts.
    max_reconnect_attempts: int = -1
    # Used instead of max_reconnect_attempts until the first connection succeeds, unless it is -1.
    startup_max_reconnect_attempts: int = -1
    # A send waits at most this long for a connection; -1 (or 0) waits forever.
    timeout: int = -1


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    brokers: tuple[tuple[str, int], ...]
    failover: bool
    options: FailoverOptions = field(default_factory=FailoverOptions)
    # The brokers named with ssl:// or stomp+ssl://: reached over TLS.
    tls: frozenset[tuple[str, int]] = frozenset()

    def scheme(self, broker: tuple[str, int]) -> str:
        """How to name `broker` in messages: ssl or tcp."""
        return "ssl" if broker in self.tls else "tcp"


# URL name -> (attribute, parser, lowest allowed value or None).
_OPTIONS: dict[str, tuple[str, str, float | None]] = {
    "initialReconnectDelay": ("initial_reconnect_delay", "int", 0),
    "maxReconnectDelay": ("max_reconnect_delay", "int", 0),
    "useExponentialBackOff": ("use_exponential_back_off", "bool", None),
    "backOffMultiplier": ("back_off_multiplier", "float", 1.0),
    "reconnectDelayExponent": ("back_off_multiplier", "float", 1.0),
    "randomize": ("randomize", "bool", None),
    "maxReconnectAttempts": ("max_reconnect_attempts", "int", -1),
    "startupMaxReconnectAttempts": ("startup_max_reconnect_attempts", "int", -1),
    "timeout": ("timeout", "int", -1),
}


def parse_url(url: str) -> BrokerUrl:
    """Parse a plain or failover broker URL; UrlError names what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise UrlError("broker URL is empty")
    if len(url) > _MAX_URL_LENGTH:
        raise UrlError(f"broker URL is longer than {_MAX_URL_LENGTH} characters")
    url = url.strip()
    if not url.startswith("failover:"):
        if "?" in url:
            raise UrlError(f"broker URI {url!r} takes no options; put them on a failover: URL")
        members, failover, options = [url], False, FailoverOptions()
    else:
        rest = url[len("failover:"):].removeprefix("//")
        members, query = _split_failover(rest, url)
        failover, options = True, parse_options(query)
    brokers = tuple(parse_broker(member) for member in members)
    tls = frozenset(b for b, m in zip(brokers, members, strict=True) if m.partition("://")[0] in TLS_SCHEMES)
    for broker, member in zip(brokers, members, strict=True):
        if broker in tls and member.partition("://")[0] not in TLS_SCHEMES:
            raise UrlError(f"failover URL {url!r} names {member.partition('://')[2]} with and without TLS")
    return BrokerUrl(brokers=brokers, failover=failover, options=options, tls=tls)


def _split_failover(rest: str, url: str) -> tuple[list[str], str]:
    """('tcp://a:1,tcp://b:2', 'k=v') from '(tcp://a:1,tcp://b:2)?k=v' or 'tcp://a:1,tcp://b:2?k=v'."""
    if rest.startswith("("):
        close = rest.find(")")
        if close < 0:
            raise UrlError(f"failover URL {url!r}: '(' without a matching ')'")
        inner, after = rest[1:close], rest[close + 1:]
        if after and not after.startswith("?"):
            raise UrlError(f"failover URL {url!r}: unexpected {after!r} after ')'")
        query = after[1:]
    else:
        inner, _, query = rest.partition("?")
        if "(" in inner or ")" in inner:
            raise UrlError(f"failover URL {url!r}: unbalanced parentheses")
    members = [member.strip() for member in inner.split(",")]
    if members == [""]:
        raise UrlError(f"failover URL {url!r} lists no broker URIs")
    if "" in members:
        raise UrlError(f"failover URL {url!r} has an empty broker URI in its list")
    if len(members) > _MAX_BROKERS:
        raise UrlError(f"failover URL lists {len(members)} brokers; at most {_MAX_BROKERS} are allowed")
    return members, query


def parse_broker(uri: str) -> tuple[str, int]:
    """(host, port) from 'tcp://host:port', 'ssl://host:port', 'stomp://...' or 'tcp://[v6]:port'."""
    scheme = uri.partition("://")[0]
    if "://" in uri and scheme not in _SCHEMES:
        expected = ", ".join(_SCHEMES)
        raise UrlError(f"broker URI {uri!r}: unsupported scheme {scheme!r} (expected one of {expected})")
    if "?" in uri:
        raise UrlError(f"broker URI {uri!r} takes no options; put them after the failover list")
    try:
        address = split_address(uri, "broker URI")
    except ValueError as exc:
        raise UrlError(str(exc)) from None
    return address.host, address.port


def parse_options(query: str) -> FailoverOptions:
    """FailoverOptions from an ActiveMQ-style query string (without the '?')."""
    values: dict[str, object] = {}
    given: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        name, eq, text = pair.partition("=")
        if not name:
            raise UrlError(f"failover URL option {pair!r} has no name")
        if name not in _OPTIONS:
            known = ", ".join(sorted(_OPTIONS))
            raise UrlError(f"unknown option {name!r} in failover URL (known: {known})")
        if not eq:
            raise UrlError(f"failover URL option {name!r} needs a value: {name}=...")
        attribute, kind, lowest = _OPTIONS[name]
        if attribute in given:
            raise UrlError(f"failover URL option {name!r} repeats {given[attribute]!r}")
        given[attribute] = name
        values[attribute] = _PARSERS[kind](name, text, lowest)
    return FailoverOptions(**values)  # type: ignore[arg-type]


def _parse_int(name: str, text: str, lowest: float | None) -> int:
    if not _INTEGER.fullmatch(text):
        raise UrlError(f"failover URL option {name!r}: expected an integer, got {text!r}")
    value = int(text)
    if lowest is not None and value < lowest:
        raise UrlError(f"failover URL option {name!r}: must be at least {int(lowest)}, got {value}")
    return value


def _parse_float(name: str, text: str, lowest: float | None) -> float:
    value = float(text) if _NUMBER.fullmatch(text) else math.nan
    if not math.isfinite(value):
        raise UrlError(f"failover URL option {name!r}: expected a number, got {text!r}")
    if lowest is not None and value < lowest:
        raise UrlError(f"failover URL option {name!r}: must be at least {lowest}, got {text!r}")
    return value


def _parse_bool(name: str, text: str, lowest: float | None) -> bool:
    # Java's Boolean.valueOf takes anything but "true" as false; a typo should not flip a setting.
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise UrlError(f"failover URL option {name!r}: expected true or false, got {text!r}")
    return lowered == "true"


_PARSERS: dict[str, Callable[[str, str, float | None], object]] = {
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
}


def option_names() -> dict[str, str]:
    """URL option name -> FailoverOptions attribute (for docs and tests)."""
    return {name: spec[0] for name, spec in _OPTIONS.items()}


# -- reconnect policy: pure pieces for the failover client -------------------------------------------


def next_delay(attempt: int, options: FailoverOptions) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1 = the first retry; 0 or less = now).

    As ActiveMQ's FailoverTransport.doDelay: start at initialReconnectDelay and, with exponential
    back-off, multiply by backOffMultiplier after each failed attempt, never exceeding maxReconnectDelay.
    """
    if attempt <= 0:
        return 0.0
    delay = float(options.initial_reconnect_delay)
    if options.use_exponential_back_off:
        try:
            delay *= options.back_off_multiplier ** (attempt - 1)
        except OverflowError:  # a huge attempt count: the cap applies anyway
            delay = math.inf
    return min(delay, float(options.max_reconnect_delay)) / 1000.0


def with_jitter(delay: float, rng: random.Random, spread: float = 0.2) -> float:
    """`delay` scattered uniformly by ±spread (a fraction), so clients of a dead broker do not all
    return in step."""
    if not 0.0 <= spread < 1.0:
        raise ValueError(f"spread must be in [0, 1), got {spread}")
    return delay * rng.uniform(1.0 - spread, 1.0 + spread)


def reconnect_limit(options: FailoverOptions, ever_connected: bool) -> int:
    """How many failed attempts end the retrying (-1 = never), as FailoverTransport's
    calculateReconnectAttemptLimit: startupMaxReconnectAttempts applies until the first connection."""
    if not ever_connected and options.startup_max_reconnect_attempts != -1:
        return options.startup_max_reconnect_attempts
    return options.max_reconnect_attempts


def server_order(
    brokers: Sequence[tuple[str, int]],
    options: FailoverOptions,
    rng: random.Random,
    avoid: tuple[str, int] | None = None,
) -> list[tuple[str, int]]:
    """The order to try brokers in: shuffled if `randomize`, and the one that just failed (`avoid`) last.

    ActiveMQ's getConnectList does the same: remove the failed URI, shuffle the rest, append it.
    """
    order = [broker for broker in brokers if broker != avoid]
    if options.randomize:
        rng.shuffle(order)
    if avoid is not None and len(order) < len(brokers):
        order.extend([avoid] * (len(brokers) - len(order)))
    return order
