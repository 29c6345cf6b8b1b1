"""Disk-limit settings: `<systemUsage>` in activemq.xml, TOML, BATONMQ_* variables and flags."""

from __future__ import annotations

import pytest

from broker.daemon.cli import build_parser, start_overrides
from config.errors import ConfigError
from config.loader import build_config
from config.model import StoreSettings
from config.xml import parse_activemq_xml

GiB = 1024**3
WRAP = """<beans><broker xmlns="http://activemq.apache.org/schema/core" brokerName="b">
<persistenceAdapter><kahaDB directory="/d"/></persistenceAdapter>{body}</broker></beans>"""


def parsed(body: str):
    return parse_activemq_xml(WRAP.format(body=body).encode())


def system_usage(attrs: str = "", inner: str = "") -> str:
    return f"<systemUsage><systemUsage {attrs}>{inner}</systemUsage></systemUsage>"


def test_the_store_usage_limit_maps_to_the_store_and_temp_usage_to_the_temp_store() -> None:
    inner = ('<memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>'
             '<storeUsage><storeUsage limit="100 gb"/></storeUsage>'
             '<tempUsage><tempUsage limit="512mb"/></tempUsage>')
    out = parsed(system_usage('sendFailIfNoSpaceAfterTimeout="3000"', inner))
    assert out.values["store"]["usage_limit"] == 100 * GiB
    assert out.values["store"]["usage_timeout"] == 3.0
    # ActiveMQ's one timeout holds for memory and disk alike.
    assert out.values["limits"] == {"memory_budget": 64 * 1024 * 1024, "producer_flow_control_timeout": 3.0,
                                    "temp_usage": 512 * 1024 * 1024}
    assert out.warnings == []


@pytest.mark.parametrize(("attrs", "timeout"), [
    ('sendFailIfNoSpace="true"', 0.0),
    ('sendFailIfNoSpace="true" sendFailIfNoSpaceAfterTimeout="250"', 0.25),  # the timeout says how long
])
def test_send_fail_if_no_space(attrs: str, timeout: float) -> None:
    assert parsed(system_usage(attrs)).values["store"]["usage_timeout"] == timeout


def test_blocking_forever_and_disk_shares_are_reported_not_honoured() -> None:
    out = parsed(system_usage('sendFailIfNoSpace="false"',
                              '<storeUsage><storeUsage percentLimit="50"/></storeUsage>'))
    assert "usage_timeout" not in out.values["store"] and "usage_limit" not in out.values["store"]
    assert any("sendFailIfNoSpace" in w and "store.usage_timeout" in w for w in out.warnings), out.warnings
    assert any("percentLimit" in w for w in out.warnings), out.warnings


@pytest.mark.parametrize(("inner", "key"), [
    ('<storeUsage><storeUsage limit="lots"/></storeUsage>', "storeUsage@limit"),
    ('<storeUsage><storeUsage bogus="1"/></storeUsage>', "storeUsage@bogus"),
    ("<storeUsage><tempUsage/></storeUsage>", "storeUsage/tempUsage"),
])
def test_bad_values_name_element_and_attribute(inner: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parsed(system_usage("", inner))
    assert raised.value.key == key


def test_a_limit_below_one_mib_is_refused_once_built(tmp_path) -> None:
    path = tmp_path / "activemq.xml"
    path.write_text(WRAP.format(body=system_usage("", '<storeUsage><storeUsage limit="1kb"/></storeUsage>')))
    with pytest.raises(ConfigError) as raised:
        build_config(path, environ={})
    assert raised.value.key == "store.usage_limit"


def test_toml_variables_and_flags_take_sizes_and_flags_win(tmp_path) -> None:
    path = tmp_path / "batonmq.toml"
    path.write_text('[store]\nusage_limit = "2 gb"\nreserve = "1mb"\nmin_free = 0\n'
                    'on_corruption = "quarantine"\n')
    config = build_config(path, environ={})
    assert (config.store.usage_limit, config.store.reserve, config.store.min_free) == (2 * GiB, 1 << 20, 0)
    assert config.store.on_corruption == "quarantine"
    env = {"BATONMQ_STORE_USAGE_LIMIT": "3gb", "BATONMQ_STORE__CURSOR_WINDOW": "1mb"}
    config = build_config(path, environ=env)
    assert (config.store.usage_limit, config.store.cursor_window) == (3 * GiB, 1 << 20)
    args = build_parser().parse_args(["start", "--store-usage-limit", "4gb", "--store-usage-timeout", "0"])
    config = build_config(path, environ=env, overrides=start_overrides(args))
    assert (config.store.usage_limit, config.store.usage_timeout) == (4 * GiB, 0.0)


def test_defaults() -> None:
    store = StoreSettings()
    assert store.usage_limit is None  # chosen from the disk at start
    assert (store.usage_timeout, store.on_corruption) == (30.0, "refuse")
