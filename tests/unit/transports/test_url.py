"""Broker URLs (ActiveMQ "Failover Transport Reference") and the pure reconnect-policy helpers."""

from __future__ import annotations

import dataclasses
import random

import pytest

from config.errors import BrokerError
from transports.url import (
    BrokerUrl,
    FailoverOptions,
    UrlError,
    next_delay,
    option_names,
    parse_url,
    reconnect_limit,
    server_order,
    with_jitter,
)

DEFAULTS = FailoverOptions()


# -- plain URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "broker"),
    [
        ("tcp://localhost:61616", ("localhost", 61616)),
        ("stomp://127.0.0.2:1", ("127.0.0.2", 1)),
        ("tcp://[::1]:61616", ("::1", 61616)),
        ("tcp://[fe80::1]:65535", ("fe80::1", 65535)),
        ("tcp://broker-1.example.org:61613/", ("broker-1.example.org", 61613)),
        ("  tcp://h:5  ", ("h", 5)),
    ],
)
def test_plain_url(url: str, broker: tuple[str, int]) -> None:
    assert parse_url(url) == BrokerUrl(brokers=(broker,), failover=False, options=DEFAULTS)


def test_ssl_brokers_are_marked_for_tls() -> None:
    assert parse_url("ssl://h:61617") == BrokerUrl(brokers=(("h", 61617),), failover=False,
                                                    tls=frozenset({("h", 61617)}))
    parsed = parse_url("failover:(stomp+ssl://a:1,tcp://b:2,ssl://[::1]:3)?randomize=false")
    assert parsed.brokers == (("a", 1), ("b", 2), ("::1", 3))
    assert parsed.tls == {("a", 1), ("::1", 3)}
    assert [parsed.scheme(b) for b in parsed.brokers] == ["ssl", "tcp", "ssl"]
    assert parse_url("tcp://h:1").tls == frozenset()


# -- failover URLs -------------------------------------------------------------------------------------


def test_failover_with_parentheses_and_options() -> None:
    parsed = parse_url(
        "failover:(tcp://h1:61616,tcp://[::1]:61617)?initialReconnectDelay=100&maxReconnectDelay=5000"
        "&useExponentialBackOff=false&backOffMultiplier=1.5&randomize=false&maxReconnectAttempts=3"
        "&startupMaxReconnectAttempts=7&timeout=2500"
    )
    assert parsed.failover
    assert parsed.brokers == (("h1", 61616), ("::1", 61617))
    assert parsed.options == FailoverOptions(
        initial_reconnect_delay=100,
        max_reconnect_delay=5000,
        use_exponential_back_off=False,
        back_off_multiplier=1.5,
        randomize=False,
        max_reconnect_attempts=3,
        startup_max_reconnect_attempts=7,
        timeout=2500,
    )


@pytest.mark.parametrize(
    ("url", "brokers"),
    [
        ("failover:tcp://h:1", (("h", 1),)),
        ("failover:tcp://a:1,stomp://b:2", (("a", 1), ("b", 2))),
        ("failover:(tcp://a:1)", (("a", 1),)),
        ("failover://(tcp://a:1, tcp://b:2)", (("a", 1), ("b", 2))),
        ("failover:(tcp://a:1)?", (("a", 1),)),
    ],
)
def test_failover_forms(url: str, brokers: tuple[tuple[str, int], ...]) -> None:
    parsed = parse_url(url)
    assert parsed.failover and parsed.brokers == brokers and parsed.options == DEFAULTS


def test_failover_without_parentheses_takes_options_too() -> None:
    assert parse_url("failover:tcp://a:1,tcp://b:2?randomize=false").options.randomize is False


def test_activemq_defaults() -> None:
    assert DEFAULTS == FailoverOptions(
        initial_reconnect_delay=10,
        max_reconnect_delay=30000,
        use_exponential_back_off=True,
        back_off_multiplier=2.0,
        randomize=True,
        max_reconnect_attempts=-1,
        startup_max_reconnect_attempts=-1,
        timeout=-1,
    )


def test_reconnect_delay_exponent_is_activemqs_spelling_of_the_multiplier() -> None:
    assert parse_url("failover:(tcp://a:1)?reconnectDelayExponent=3").options.back_off_multiplier == 3.0


def test_every_option_name_maps_to_a_field() -> None:
    assert set(option_names().values()) == {f.name for f in dataclasses.fields(FailoverOptions)}


@pytest.mark.parametrize(("text", "value"), [("true", True), ("TRUE", True), ("False", False)])
def test_booleans(text: str, value: bool) -> None:
    assert parse_url(f"failover:(tcp://a:1)?randomize={text}").options.randomize is value


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.randomize = False  # type: ignore[misc]


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tcp://h", "broker URI 'tcp://h' needs a port"),
        ("tcp://h:", "needs a port"),
        ("failover:(tcp://a:1)?maxReconnectDelay=abc",
         "failover URL option 'maxReconnectDelay': expected an integer, got 'abc'"),
        ("failover:(tcp://a:1)?foo=1", "unknown option 'foo'"),
        ("failover:(tcp://a:1)?MaxReconnectDelay=1", "unknown option 'MaxReconnectDelay'"),  # case-sensitive
        ("failover:(tcp://a:1)?randomize=yes", "expected true or false, got 'yes'"),
        ("failover:(tcp://a:1)?backOffMultiplier=x", "expected a number, got 'x'"),
        ("failover:(tcp://a:1)?backOffMultiplier=nan", "expected a number"),
        ("failover:(tcp://a:1)?backOffMultiplier=0.5", "must be at least 1.0"),
        ("failover:(tcp://a:1)?initialReconnectDelay=-1", "must be at least 0"),
        ("failover:(tcp://a:1)?maxReconnectAttempts=-2", "must be at least -1"),
        ("failover:(tcp://a:1)?timeout=1.5", "expected an integer, got '1.5'"),
        ("failover:(tcp://a:1)?randomize", "needs a value"),
        ("failover:(tcp://a:1)?randomize=true&randomize=false", "repeats"),
        ("failover:(tcp://a:1)?backOffMultiplier=2&reconnectDelayExponent=3", "repeats 'backOffMultiplier'"),
        ("failover:(tcp://a:1)?=1", "has no name"),
        ("failover:(tcp://a:1", "without a matching ')'"),
        ("failover:(tcp://a:1)x", "unexpected 'x' after ')'"),
        ("failover:()", "lists no broker URIs"),
        ("failover:", "lists no broker URIs"),
        ("failover:(tcp://a:1,,tcp://b:2)", "empty broker URI"),
        ("failover:tcp://a:1)", "unbalanced parentheses"),
        ("failover:(tcp://a:1?x=1)", "takes no options"),
        ("tcp://a:1?randomize=false", "takes no options"),
        ("nio://a:1", "unsupported scheme 'nio'"),
        ("failover:(ssl://a:1,tcp://a:1)", "names a:1 with and without TLS"),
        ("localhost:61616", "needs a scheme"),
        ("tcp://a:0", "invalid port '0'"),
        ("tcp://a:65536", "invalid port '65536'"),
        ("tcp://a:http", "invalid port 'http'"),
        ("tcp://a:1/queue", "has a path"),
        ("tcp://::1:61616", "write an IPv6 address in brackets"),
        ("tcp://[::1:61616", "without a matching ']'"),
        ("tcp://[not-v6]:1", "is not an IPv6 address"),
        ("tcp://[::1]", "needs a port"),
        ("tcp://a b:1", "invalid host 'a b'"),
        ("tcp://:1", "invalid host ''"),
        ("", "empty"),
        ("failover:(" + ",".join(f"tcp://h{i}:1" for i in range(65)) + ")", "at most 64"),
        ("tcp://" + "h" * 9000 + ":1", "longer than"),
    ],
)
def test_errors_name_the_wrong_part(url: str, message: str) -> None:
    with pytest.raises(UrlError) as info:
        parse_url(url)
    assert message in str(info.value)
    assert isinstance(info.value, BrokerError)


# -- reconnect policy ----------------------------------------------------------------------------------


def test_next_delay_doubles_from_initial_up_to_the_cap() -> None:
    delays = [next_delay(attempt, DEFAULTS) for attempt in range(0, 16)]
    assert delays[:5] == [0.0, 0.010, 0.020, 0.040, 0.080]
    assert delays[12] == pytest.approx(20.48)
    assert delays[13:] == [30.0, 30.0, 30.0]
    assert next_delay(10**9, DEFAULTS) == 30.0  # no overflow


def test_next_delay_without_back_off_is_constant() -> None:
    options = FailoverOptions(initial_reconnect_delay=250, use_exponential_back_off=False)
    assert {next_delay(attempt, options) for attempt in range(1, 50)} == {0.25}


def test_next_delay_with_custom_multiplier_and_cap() -> None:
    options = parse_url("failover:(tcp://a:1)?initialReconnectDelay=100&backOffMultiplier=3&maxReconnectDelay=1000")
    assert [next_delay(a, options.options) for a in range(1, 5)] == pytest.approx([0.1, 0.3, 0.9, 1.0])


def test_jitter_stays_within_its_spread() -> None:
    rng = random.Random(7)
    values = [with_jitter(1.0, rng) for _ in range(500)]
    assert all(0.8 <= v <= 1.2 for v in values)
    assert max(values) - min(values) > 0.2  # it does scatter
    with pytest.raises(ValueError):
        with_jitter(1.0, rng, spread=1.5)


def test_reconnect_limit_startup_then_steady_state() -> None:
    options = FailoverOptions(max_reconnect_attempts=5, startup_max_reconnect_attempts=2)
    assert reconnect_limit(options, ever_connected=False) == 2
    assert reconnect_limit(options, ever_connected=True) == 5
    # -1 for startup means "use maxReconnectAttempts", as in FailoverTransport.calculateReconnectAttemptLimit.
    assert reconnect_limit(FailoverOptions(max_reconnect_attempts=4), ever_connected=False) == 4
    assert reconnect_limit(DEFAULTS, ever_connected=True) == -1


BROKERS = [("h1", 1), ("h2", 2), ("h3", 3), ("h4", 4)]


def test_server_order_keeps_the_list_without_randomize() -> None:
    options = FailoverOptions(randomize=False)
    assert server_order(BROKERS, options, random.Random(1)) == BROKERS
    assert server_order(BROKERS, options, random.Random(1), avoid=("h1", 1)) == [*BROKERS[1:], ("h1", 1)]


def test_server_order_shuffles_and_puts_the_failed_broker_last() -> None:
    rng = random.Random(3)
    orders = {tuple(server_order(BROKERS, DEFAULTS, rng, avoid=("h2", 2))) for _ in range(200)}
    assert all(order[-1] == ("h2", 2) and sorted(order) == sorted(BROKERS) for order in orders)
    assert len(orders) == 6  # all 3! orders of the other three appear


def test_server_order_with_unknown_avoid_and_single_broker() -> None:
    assert sorted(server_order(BROKERS, DEFAULTS, random.Random(0), avoid=("x", 9))) == sorted(BROKERS)
    assert server_order([("h", 1)], DEFAULTS, random.Random(0), avoid=("h", 1)) == [("h", 1)]


def test_server_order_is_deterministic_for_a_seed() -> None:
    first = server_order(BROKERS, DEFAULTS, random.Random(42))
    assert server_order(BROKERS, DEFAULTS, random.Random(42)) == first
