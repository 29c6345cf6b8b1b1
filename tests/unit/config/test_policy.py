"""[[policy]] tables: what they accept, and each way a bad one is refused with a clear ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import ConfigError
from config.loader import build_config
from config.policy import MAX_POLICIES

MiB = 1024 * 1024


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "batonmq.toml"
    path.write_text(text)
    return build_config(path, environ={})


def test_policies_read_from_toml_with_sizes_as_activemq_writes_them(tmp_path) -> None:
    config = load(tmp_path, '[[policy]]\nqueue = "ORDERS.>"\nmemory_limit = "8 mb"\n'
                            'producer_flow_control = false\n'
                            '[[policy]]\ntopic = "PRICES.*"\ncursor_window = 65536\n')
    orders, prices = config.policy
    assert (orders.queue, orders.topic, orders.memory_limit, orders.producer_flow_control) == (
        "ORDERS.>", None, 8 * MiB, False)
    assert (prices.topic, prices.cursor_window, prices.producer_flow_control) == ("PRICES.*", 65536, True)
    assert orders.label == 'policy[queue="ORDERS.>"]'


def test_the_cursor_window_defaults_to_70_percent_of_the_limit_within_the_store_window(tmp_path) -> None:
    config = load(tmp_path, '[[policy]]\nqueue = "A"\nmemory_limit = "1mb"\n'
                            '[[policy]]\nqueue = "B"\nmemory_limit = "1gb"\n[[policy]]\nqueue = "C"\n')
    a, b, c = config.policy
    store_window = config.store.cursor_window
    assert a.window(store_window) == MiB * 70 // 100
    assert b.window(store_window) == store_window  # 70% of 1 GiB is more than the store's window
    assert c.window(store_window) == store_window


@pytest.mark.parametrize(("table", "key", "problem"), [
    ('queue = "ORDERS.>.EU"', "policy[0].queue", "'>' may only be a whole last element"),
    ('queue = "ORD*"', "policy[0].queue", "'*' must be a whole element"),
    ('queue = "A,B"', "policy[0].queue", "one pattern per [[policy]]"),
    ('queue = ""', "policy[0].queue", "1-1024 characters"),
    ('queue = "A"\ntopic = "A"', "policy[0]", "exactly one of queue or topic"),
    ('memory_limit = "8mb"', "policy[0]", "exactly one of queue or topic"),
    ('queue = "A"\nmemory_limit = -1', "policy[0].memory_limit", "greater than or equal to 1024"),
    ('queue = "A"\nmemory_limit = "-8 mb"', "policy[0].memory_limit", "expected a size"),
    ('queue = "A"\ncursor_window = 10', "policy[0].cursor_window", "greater than or equal to 1024"),
    ('queue = "A"\nmemory_limit = "1mb"\ncursor_window = "2mb"', "policy[0]",
     "cursor_window (2097152) exceeds"),
    ('queue = "A"\nproducerFlowControl = false', "policy[0].producerFlowControl", "unknown setting"),
])
def test_a_bad_policy_is_refused_naming_it(tmp_path, table: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[[policy]]\n{table}\n")
    assert info.value.key == key
    assert problem in info.value.problem


def test_a_pattern_given_twice_is_refused_but_a_queue_and_a_topic_may_share_one(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, '[[policy]]\nqueue = "A.>"\n[[policy]]\nqueue = "A.>"\nmemory_limit = "2mb"\n')
    assert info.value.key == "policy"
    assert 'policy[queue="A.>"] is configured twice' in info.value.problem
    assert len(load(tmp_path, '[[policy]]\nqueue = "A.>"\n[[policy]]\ntopic = "A.>"\n').policy) == 2


def test_more_policies_than_the_bound_are_refused(tmp_path) -> None:
    many = "".join(f'[[policy]]\nqueue = "Q{i}"\n' for i in range(MAX_POLICIES + 1))
    with pytest.raises(ConfigError) as info:
        load(tmp_path, many)
    assert info.value.key == "policy"
    assert f"at most {MAX_POLICIES} items" in info.value.problem
    assert len(load(tmp_path, many.rsplit("[[policy]]", 1)[0]).policy) == MAX_POLICIES
