"""Per-destination policies (broker/engine/policies.py): ActiveMQ's choice of entry, shared results,
and what a destination does with its policy (memory share, cursor window, flow control)."""

from __future__ import annotations

import time

import pytest

from broker.engine.core import Broker
from broker.engine.policies import Policies
from config.model import BrokerConfig, Limits
from config.policy import DestinationPolicy
from tests.unit.broker.memconn import Client

MiB = 1024 * 1024


def config(*entries: dict[str, object], **limits: object) -> BrokerConfig:
    return BrokerConfig(name="unit", connectors=["tcp://127.0.0.1:1"], limits=Limits(**limits),  # type: ignore[arg-type]
                        policy=[DestinationPolicy.model_validate(e) for e in entries])


def chosen(policies: Policies, destination: str) -> str:
    return policies.for_destination(destination).label


REVERSE = pytest.mark.parametrize("reverse", [False, True])  # configuration order does not decide


@REVERSE
def test_an_exact_name_wins_then_the_narrowest_pattern_then_the_broker_wide_settings(reverse: bool) -> None:
    entries = [{"queue": ">"}, {"queue": "ORDERS.>"}, {"queue": "ORDERS.EU.>"}, {"queue": "ORDERS.EU.PARIS"},
               {"queue": "ORDERS.*.LONDON"}, {"topic": "ORDERS.>"}]
    policies = Policies(config(*(reversed(entries) if reverse else entries)))
    assert chosen(policies, "/queue/ORDERS.EU.PARIS") == 'policy[queue="ORDERS.EU.PARIS"]'
    assert chosen(policies, "/queue/ORDERS.EU.ROME") == 'policy[queue="ORDERS.EU.>"]'
    assert chosen(policies, "/queue/ORDERS.EU") == 'policy[queue="ORDERS.EU.>"]'  # '>' takes nothing too
    assert chosen(policies, "/queue/ORDERS.UK.LONDON") == 'policy[queue="ORDERS.*.LONDON"]'
    assert chosen(policies, "/queue/ORDERS") == 'policy[queue="ORDERS.>"]'
    assert chosen(policies, "/queue/INVOICES") == 'policy[queue=">"]'
    assert chosen(policies, "/topic/ORDERS.EU.PARIS") == 'policy[topic="ORDERS.>"]'
    assert chosen(policies, "/topic/INVOICES") == ""  # no topic entry matches: the broker-wide settings
    assert chosen(policies, "/remote-temp-queue/ID:x-1") == ""  # as ActiveMQ: queue=">" is not for these


@REVERSE
def test_between_patterns_that_do_not_cover_each_other_activemq_orders_the_text(reverse: bool) -> None:
    # ActiveMQDestination.compare: a pattern that matches the other (as a name) sorts after it.
    # A.*.C and A.B.> match neither: the text, '*' < 'B'. FOO.* and FOO.> match each other (ActiveMQ's
    # pick then follows its hash order): the text too, the same either way round.
    entries = [{"queue": "FOO.*"}, {"queue": "FOO.>"}, {"queue": "A.B.>"}, {"queue": "A.*.C"}]
    policies = Policies(config(*(reversed(entries) if reverse else entries)))
    assert chosen(policies, "/queue/FOO.BAR") == 'policy[queue="FOO.*"]'
    assert chosen(policies, "/queue/FOO.BAR.BAZ") == 'policy[queue="FOO.>"]'
    assert chosen(policies, "/queue/A.B.C") == 'policy[queue="A.*.C"]'
    assert chosen(policies, "/queue/A.B.D") == 'policy[queue="A.B.>"]'


def test_a_policy_gives_its_settings_and_unset_ones_stay_broker_wide() -> None:
    policies = Policies(config({"queue": "A.>", "memory_limit": "1mb", "producer_flow_control": False},
                               {"queue": "B", "cursor_window": "64kb"}, producer_flow_control_timeout=7.0))
    a, b, other = (policies.for_destination(f"/queue/{n}") for n in ("A.1", "B", "C"))
    assert (a.memory_limit, a.memory_setting, a.cursor_window) == (MiB, 'policy[queue="A.>"].memory_limit',
                                                                    MiB * 70 // 100)
    assert (a.flow_timeout, a.flow_setting) == (0.0, 'policy[queue="A.>"].producer_flow_control')
    assert (b.memory_limit, b.memory_setting) == (1024 * MiB, "limits.destination_memory_limit")
    assert b.cursor_window == 64 * 1024
    assert (b.flow_timeout, b.flow_setting) == (7.0, "limits.producer_flow_control_timeout")
    assert other is policies.default


def test_destinations_share_one_frozen_result_per_entry() -> None:
    broker = Broker(config({"queue": "A.>", "memory_limit": "1mb"}, {"topic": "T.>", "memory_limit": "2mb"}))
    first, second = broker.destinations.queue("/queue/A.1"), broker.destinations.queue("/queue/A.2")
    assert first.policy is second.policy and first.memory.limit == MiB
    assert first.memory.setting == 'policy[queue="A.>"].memory_limit'
    assert broker.destinations.queue("/queue/B").policy is broker.policies.default
    with pytest.raises(AttributeError):
        first.policy.memory_limit = 5  # type: ignore[misc]  # frozen: shared by every such queue


async def test_a_durable_subscription_takes_its_topics_policy() -> None:
    broker = Broker(config({"topic": "T.>", "memory_limit": "2mb"}, {"queue": ">", "memory_limit": "1mb"}))
    durable, _ = broker.attach_durable("c1", "sub", "/topic/T.prices", None, None)
    assert durable.queue.policy.label == 'policy[topic="T.>"]'
    assert durable.queue.memory.limit == 2 * MiB
    assert broker.destinations.topics["/topic/T.prices"].memory.limit == 2 * MiB


async def test_without_flow_control_a_full_queue_refuses_at_once_naming_its_policy() -> None:
    broker = Broker(config({"queue": "SMALL", "memory_limit": 8192, "producer_flow_control": False},
                           producer_flow_control_timeout=30.0))
    producer, other = Client(broker), Client(broker)
    await producer.connect()
    await other.connect()
    start = time.monotonic()
    for i in range(20):  # 20 KiB into an 8 KiB queue: refused well before the end
        await producer.frame("SEND", body=b"x" * 1024, destination="/queue/SMALL", receipt=f"r{i}")
        if producer.conn.errors():
            break
    assert time.monotonic() - start < 5  # not the 30 s flow-control wait
    (error,) = [f for f in producer.conn.sent if f.command == "ERROR"]
    assert error.headers["message"] == 'destination full (policy[queue="SMALL"].memory_limit)'
    assert error.headers["memory-limit"] == 'policy[queue="SMALL"].memory_limit'
    detail = error.body.decode()
    assert "at once" in detail and 'policy[queue="SMALL"].producer_flow_control' in detail
    assert broker.destinations.queues["/queue/SMALL"].depth in range(5, 9)
    for i in range(20):  # the same bytes to a queue with the broker-wide limit are all taken
        await other.frame("SEND", body=b"x" * 1024, destination="/queue/BIG", receipt=f"b{i}")
    assert other.conn.errors() == [] and broker.destinations.queues["/queue/BIG"].depth == 20


def test_the_tree_finds_exactly_the_entries_whose_pattern_matches() -> None:
    import random

    from broker.engine.wildcard import compile_pattern, matches

    rng = random.Random(7)  # fixed seed: the same 300 names every run

    def text(wild: bool) -> str:
        elements = ["A", "B", "*"] if wild else ["A", "B", "*", ">"]
        parts = [rng.choice(elements) for _ in range(rng.randint(1, 4))]
        if wild and rng.random() < 0.4:
            parts.append(">")
        return ".".join(parts)

    patterns = sorted({text(wild=True) for _ in range(60)})
    policies = Policies(config(*({"queue": p} for p in patterns)))
    for _ in range(300):
        name = text(wild=False)  # names may hold '*' and '>' literally
        found = sorted(e.text for e in policies._queues.matching(name))
        assert found == [p for p in patterns if matches(compile_pattern(p), name)], name
