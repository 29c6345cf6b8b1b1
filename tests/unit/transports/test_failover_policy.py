"""The pure pieces of the reconnect policy: URL forms, pass delays, server order, loss verdicts."""

from __future__ import annotations

import random

import pytest

from transports.client.dialer import pass_delay
from transports.client.replay import (
    MAX_ERROR_STREAK,
    Verdict,
    is_protocol_fault,
    is_transient_refusal,
    judge_loss,
)
from transports.url import FailoverOptions, UrlError, parse_url, reconnect_limit, server_order

A, B, C = ("127.0.0.2", 61616), ("127.0.0.3", 61616), ("127.0.0.4", 61616)


@pytest.mark.parametrize(
    ("url", "brokers", "failover"),
    [
        ("tcp://127.0.0.2:61616", (A,), False),
        ("failover:(tcp://127.0.0.2:61616,tcp://127.0.0.3:61616)?randomize=false", (A, B), True),
        ("failover:tcp://127.0.0.2:61616", (A,), True),
        ("failover:tcp://127.0.0.2:61616,tcp://127.0.0.3:61616?timeout=50", (A, B), True),
    ],
)
def test_the_three_url_forms(url, brokers, failover):
    parsed = parse_url(url)
    assert parsed.brokers == brokers and parsed.failover is failover


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("127.0.0.2:61616", "needs a scheme"),
        ("failover:(tcp://a:1", "matching ')'"),
        ("failover:(tcp://a:1)?maxReconectAttempts=3", "unknown option 'maxReconectAttempts'"),
        ("failover:(tcp://a:1)?timeout=soon", "expected an integer"),
        ("failover:()", "lists no broker"),
        ("tcp://a:99999", "invalid port"),
    ],
)
def test_a_bad_url_is_one_clear_error(url, says):
    with pytest.raises(UrlError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_url(url)


def test_first_pass_is_immediate_then_backoff_grows_to_the_cap_with_jitter():
    options = FailoverOptions(initial_reconnect_delay=10, max_reconnect_delay=100, back_off_multiplier=2.0)
    rng = random.Random(7)
    assert pass_delay(1, options, rng) == 0.0
    for attempt, base in [(2, 0.010), (3, 0.020), (4, 0.040), (5, 0.080), (6, 0.100), (30, 0.100)]:
        for _ in range(20):
            assert base * 0.8 <= pass_delay(attempt, options, rng) <= base * 1.2


def test_constant_delay_without_exponential_backoff():
    options = FailoverOptions(initial_reconnect_delay=50, use_exponential_back_off=False)
    delays = {round(pass_delay(n, options, random.Random(n)), 3) for n in range(2, 12)}
    assert all(0.04 <= d <= 0.06 for d in delays)


def test_server_order_puts_the_failed_broker_last_and_shuffles_the_rest():
    options = FailoverOptions()
    orders = {tuple(server_order([A, B, C], options, random.Random(seed), avoid=B)) for seed in range(40)}
    assert all(order[-1] == B and sorted(order) == sorted([A, B, C]) for order in orders)
    assert len(orders) == 2  # both orders of A and C occur
    fixed = FailoverOptions(randomize=False)
    assert server_order([A, B, C], fixed, random.Random(1), avoid=A) == [B, C, A]
    assert server_order([A, B, C], fixed, random.Random(1)) == [A, B, C]


def test_reconnect_limit_uses_startup_limit_only_before_the_first_connection():
    options = FailoverOptions(max_reconnect_attempts=5, startup_max_reconnect_attempts=2)
    assert reconnect_limit(options, ever_connected=False) == 2
    assert reconnect_limit(options, ever_connected=True) == 5
    assert reconnect_limit(FailoverOptions(max_reconnect_attempts=3), ever_connected=False) == 3


def test_losses_without_error_are_always_reconnected():
    assert judge_loss(None, 0) is Verdict.RECONNECT
    assert judge_loss(None, 99) is Verdict.RECONNECT


@pytest.mark.parametrize("message", ["unknown command", "missing destination", "frame too large: 9 > 8",
                                     "Duplicate subscription", "invalid heart-beat header 'x'"])
def test_an_error_for_our_protocol_fault_fails_the_client(message):
    assert is_protocol_fault(message)
    assert judge_loss(message, 1) is Verdict.FAIL


@pytest.mark.parametrize("message", ["broker is not master", "message not persisted", "internal error",
                                     "too many connections"])
def test_broker_side_errors_reconnect_and_resend_the_refused_frame(message):
    assert judge_loss(message, 1) is Verdict.RECONNECT
    assert is_transient_refusal(message)


def test_other_refusals_reconnect_but_are_not_resent_and_a_streak_ends_it():
    assert judge_loss("destination full", 1) is Verdict.RECONNECT
    assert not is_transient_refusal("destination full")
    assert not is_transient_refusal("invalid destination")
    assert judge_loss("broker is not master", MAX_ERROR_STREAK) is Verdict.FAIL
