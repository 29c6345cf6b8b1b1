"""A user's existing activemq.xml: warnings for what is ignored, placeholders, destination policy,
and the stock files of ActiveMQ 5.17.2 and Debian's package (tests/fixtures/activemq/, origins inside)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from config.connector import parse_connector_uri
from config.errors import ConfigError
from config.loader import build_config
from config.model import MiB
from config.placeholders import activemq_properties
from config.xml import parse_activemq_xml

STOCK = Path(__file__).resolve().parents[2] / "fixtures" / "activemq"
SERVED = ("tcp", "stomp")  # what this build's transports serve; ssl and ws connectors are skipped


def parse(broker_body: str, attrs: str = "", properties: dict[str, str] | None = None):
    namespace = "http://activemq.apache.org/schema/core"
    document = f'<beans><broker xmlns="{namespace}" {attrs}>{broker_body}</broker></beans>'
    return parse_activemq_xml(document.encode(), "a.xml", properties, SERVED)


def policy(*entries: str) -> str:
    inner = "".join(entries)
    entries_element = f"<policyEntries>{inner}</policyEntries>"
    return f"<destinationPolicy><policyMap>{entries_element}</policyMap></destinationPolicy>"


def test_stock_activemq_5_17_2_loads_with_one_warning_per_ignored_thing(tmp_path, caplog) -> None:
    file = STOCK / "activemq-5.17.2.xml"
    with caplog.at_level(logging.WARNING, logger="batonmq.config"):
        config = build_config(file, {"ACTIVEMQ_BASE": str(tmp_path)}, schemes=SERVED)
    assert config.name == "localhost"
    assert config.data_dir == tmp_path / "data" / "kahadb"  # kahaDB's directory="${activemq.data}/kahadb"
    assert config.store.type == "journal"
    # openwire tcp:// and stomp:// become STOMP listeners, each with its own limits (config/connector.py);
    # amqp and mqtt are skipped, and so is ws where it is not served (SERVED here).
    limits = "?maximumConnections=1000&wireFormat.maxFrameSize=104857600"
    assert config.connectors == [f"tcp://0.0.0.0:61616{limits}", f"tcp://0.0.0.0:61613{limits}"]
    assert parse_connector_uri(config.connectors[1]).limits == {"max_connections": 1000,
                                                               "max_frame_size": 100 * MiB}
    lines = [record.getMessage() for record in caplog.records]
    assert all(line.startswith(f"{file}: ignored ") for line in lines), lines
    named = [line.removeprefix(f"{file}: ignored ").partition(":")[0] for line in lines]
    assert config.limits.topic_pending_limit == 1000  # constantPendingMessageLimitStrategy, topic=">"
    assert config.limits.temp_usage == 50 * 1024 * MiB  # tempUsage limit="50 gb"
    assert named == [
        "<managementContext>",
        "memoryUsage/memoryUsage@percentOfJvmHeap",
        "transportConnector[amqp]",
        "transportConnector[mqtt]",
        "transportConnector[ws]",
        "<shutdownHooks>",
        '<bean class="org.springframework.beans.factory.config.PropertyPlaceholderConfigurer">',
        '<import resource="jetty.xml">',
    ]


def test_debian_instance_file_takes_its_base_from_the_init_script_variable(tmp_path) -> None:
    config = build_config(STOCK / "debian-main.xml", {"ACTIVEMQ_BASE": str(tmp_path)}, schemes=SERVED)
    assert config.data_dir == tmp_path / "data" / "kahadb"
    assert config.connectors == ["tcp://127.0.0.1:61616"]


def test_activemq_stomp_example_maps_both_stomp_connectors() -> None:
    mapping = parse_activemq_xml((STOCK / "activemq-stomp.xml").read_bytes(), "s.xml",
                                 {"activemq.data": "/d"}, SERVED)
    assert mapping.values["connectors"] == ["tcp://0.0.0.0:61612", "tcp://0.0.0.0:61613"]
    assert mapping.values["data_dir"] == "/d/kahadb"
    closing = ("ignored transportConnector[stomp]@uri?transport.closeAsync: TCP or JVM tuning with no "
               "equivalent here")
    assert closing in mapping.warnings


def test_undefined_placeholder_is_an_error_unless_a_higher_layer_sets_it(tmp_path) -> None:
    file = STOCK / "activemq-5.17.2.xml"
    with pytest.raises(ConfigError) as info:
        build_config(file, {}, schemes=SERVED)
    assert info.value.key == "kahaDB@directory"
    assert info.value.problem.startswith("placeholder ${activemq.data} in '${activemq.data}/kahadb' is not "
                                         "defined: set ACTIVEMQ_DATA (or ACTIVEMQ_BASE)")
    assert info.value.problem.endswith(f"[from {file}]")
    assert build_config(file, {}, {"data_dir": str(tmp_path)}, SERVED).data_dir == tmp_path
    assert build_config(file, {"BATONMQ_DATA": str(tmp_path)}, schemes=SERVED).data_dir == tmp_path


def test_warnings_wait_until_the_configuration_is_valid(caplog) -> None:
    # An error must stay the one line `batonmq start` prints: nothing is logged before it.
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError):
        build_config(STOCK / "activemq-5.17.2.xml", {"ACTIVEMQ_DATA": "/d"},
                     {"lock": {"acquire_interval": "0"}})
    assert caplog.records == []


def test_placeholder_properties_follow_the_start_script() -> None:
    assert activemq_properties({"ACTIVEMQ_HOME": "/opt/amq"}) == {
        "activemq.home": "/opt/amq", "activemq.base": "/opt/amq", "activemq.conf": "/opt/amq/conf",
        "activemq.data": "/opt/amq/data", "activemq.tmp": "/opt/amq/tmp"}
    given = activemq_properties({"ACTIVEMQ_BASE": "/b", "ACTIVEMQ_DATA": "/srv/mq"})
    assert (given["activemq.data"], given["activemq.conf"]) == ("/srv/mq", "/b/conf")
    assert activemq_properties({"ACTIVEMQ_DATA": ""}) == {}
    mapping = parse('<persistenceAdapter><kahaDB directory="${activemq.data}/k${other}"/>'
                    "</persistenceAdapter>", properties={"activemq.data": "/d"})
    assert "data_dir" not in mapping.values
    assert mapping.deferred[("data_dir",)].problem.startswith("placeholder ${other} in '/d/k${other}'")


def test_a_resolved_directory_replaces_an_unresolved_data_directory() -> None:
    mapping = parse('<persistenceAdapter><kahaDB directory="/shared"/></persistenceAdapter>',
                    'dataDirectory="${activemq.data}"')
    assert mapping.values["data_dir"] == "/shared" and mapping.deferred == {}


def test_harmless_attributes_are_ignored_with_their_reason() -> None:
    mapping = parse('<persistenceAdapter><kahaDB indexCacheSize="10000" journalMaxFileLength="64mb"'
                    ' concurrentStoreAndDispatchQueues="false"/></persistenceAdapter>',
                    'useJmx="true" advisorySupport="false" schedulerSupport="false"')
    assert mapping.values["store"]["journal_max_file_size"] == 64 * MiB
    assert mapping.warnings == [
        "ignored broker@useJmx: BatonMQ has no JMX; metrics and health are served over HTTP (metrics_port)",
        "ignored broker@advisorySupport: BatonMQ publishes no advisory topics",
        "ignored kahaDB@indexCacheSize: store tuning with no equivalent in BatonMQ's stores",
        "ignored kahaDB@concurrentStoreAndDispatchQueues: store tuning with no equivalent in BatonMQ's "
        "stores",
    ]


def test_destination_gc_maps_from_the_catch_all_entries() -> None:
    gc = 'gcInactiveDestinations="true"'
    mapping = parse(policy(f'<policyEntry queue=">" {gc} inactiveTimoutBeforeGC="30000"/>',
                           f'<policyEntry topic=">" {gc} inactiveTimeoutBeforeGC="30000"/>',
                           f'<policyEntry queue="ORDERS.>" {gc}/>'),
                    'schedulePeriodForDestinationPurge="5000"')
    assert mapping.values["limits"] == {"destination_gc_idle": 30.0, "destination_gc_interval": 5.0}
    assert mapping.warnings == [
        'ignored policyEntry[queue="ORDERS.>"]@gcInactiveDestinations: BatonMQ always removes empty, unused '
        'destinations after limits.destination_gc_idle, the same for all: give the time on a ">" entry']
    default = parse('<destinationPolicy><policyMap><defaultEntry><policyEntry gcInactiveDestinations="true"/>'
                    "</defaultEntry></policyMap></destinationPolicy>")
    assert default.values["limits"] == {"destination_gc_idle": 60.0}  # ActiveMQ's default timeout


def test_destination_gc_that_cannot_be_expressed_is_reported() -> None:
    mapping = parse(policy('<policyEntry queue=">" gcInactiveDestinations="false" '
                           'inactiveTimoutBeforeGC="1000"/>',
                           '<policyEntry topic=">" inactiveTimoutBeforeGC="1000" memoryLimit="1mb"/>'),
                    'schedulePeriodForDestinationPurge="0"')
    assert "limits" not in mapping.values
    assert mapping.values["policy"] == [{"topic": ">", "memory_limit": MiB, "cursor_window": MiB * 70 // 100}]
    assert [line.partition(":")[0] for line in mapping.warnings] == [
        "ignored broker@schedulePeriodForDestinationPurge",
        'ignored policyEntry[queue=">"]@gcInactiveDestinations',
        'ignored policyEntry[queue=">"]@inactiveTimoutBeforeGC',
        'ignored policyEntry[topic=">"]@inactiveTimoutBeforeGC',
    ]


@pytest.mark.parametrize(
    ("entry", "key", "problem"),
    [
        ('<policyEntry queue=">"><deadLetterStrategy><individualDeadLetterStrategy queuePrefix="DLQ."/>'
         "</deadLetterStrategy></policyEntry>", 'policyEntry[queue=">"]/deadLetterStrategy',
         "only <sharedDeadLetterStrategy> is accepted (got <individualDeadLetterStrategy>)"),
        ('<policyEntry topic=">"><subscriptionRecoveryPolicy><lastImageSubscriptionRecoveryPolicy/>'
         "</subscriptionRecoveryPolicy></policyEntry>", 'policyEntry[topic=">"]/subscriptionRecoveryPolicy',
         "only <noSubscriptionRecoveryPolicy> is accepted"),
        ('<policyEntry queue=">" allConsumersExclusiveByDefault="true"/>',
         'policyEntry[queue=">"]@allConsumersExclusiveByDefault', "only 'false' is accepted"),
        ('<policyEntry queue=">" gcInactiveDestination="true"/>',
         'policyEntry[queue=">"]@gcInactiveDestination', "unknown attribute"),
        ('<policyEntry queue=">"><bogusPolicy/></policyEntry>', 'policyEntry[queue=">"]/bogusPolicy',
         "unknown element"),
    ],
)
def test_policies_that_change_what_clients_get_are_refused(entry: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(policy(entry))
    assert info.value.key == key and info.value.problem.startswith(problem), info.value


def test_shared_dead_letter_strategy_is_what_batonmq_does() -> None:
    mapping = parse(policy('<policyEntry queue=">"><deadLetterStrategy><sharedDeadLetterStrategy/>'
                           "</deadLetterStrategy></policyEntry>"))
    assert mapping.warnings == [
        'ignored policyEntry[queue=">"]/deadLetterStrategy: what BatonMQ does anyway; its options are not '
        "read"]


def test_left_alone_elements_stay_silent_and_empty_containers_warn() -> None:
    mapping = parse("<producerSystemUsage/><networkConnectors/>")
    assert mapping.values == {}
    assert mapping.warnings == ["ignored <networkConnectors>: empty"]


def usage(attrs: str = "", inner: str = "") -> str:
    return f"<systemUsage><systemUsage {attrs}>{inner}</systemUsage></systemUsage>"


def test_memory_usage_limit_is_the_memory_budget_and_disk_usages_the_store_limits() -> None:
    memory = '<memoryUsage><memoryUsage limit="64 mb"/></memoryUsage>'
    disk = ('<storeUsage><storeUsage limit="100 gb"/></storeUsage>'
            '<tempUsage><tempUsage limit="50 gb"/></tempUsage>')
    mapping = parse(usage('sendFailIfNoSpaceAfterTimeout="3000"', memory + disk))
    assert mapping.values == {"limits": {"memory_budget": 64 * MiB, "producer_flow_control_timeout": 3.0,
                                         "temp_usage": 50 * 1024 * MiB},
                              "store": {"usage_limit": 100 * 1024 * MiB, "usage_timeout": 3.0}}
    assert mapping.warnings == []


def test_send_fail_if_no_space_refuses_at_once_and_false_is_reported() -> None:
    assert parse(usage('sendFailIfNoSpace="true"')).values == {
        "limits": {"producer_flow_control_timeout": 0.0}, "store": {"usage_timeout": 0.0}}
    mapping = parse(usage('sendFailIfNoSpace="false"'))
    assert mapping.values == {}
    assert "producer_flow_control_timeout" in mapping.warnings[0]
    # An explicit timeout wins over the flag, as in ActiveMQ (the timeout implies failing).
    assert parse(usage('sendFailIfNoSpace="true" sendFailIfNoSpaceAfterTimeout="500"')).values == {
        "limits": {"producer_flow_control_timeout": 0.5}, "store": {"usage_timeout": 0.5}}


def test_percent_of_jvm_heap_is_reported_and_bad_usage_is_refused() -> None:
    mapping = parse(usage(inner='<memoryUsage><memoryUsage percentOfJvmHeap="70"/></memoryUsage>'))
    assert mapping.values == {} and "percentOfJvmHeap" in mapping.warnings[0]
    with pytest.raises(ConfigError, match="memoryUsage"):
        parse(usage(inner='<memoryUsage><memoryUsage limit="lots"/></memoryUsage>'))
    with pytest.raises(ConfigError, match="systemUsage"):
        parse("<systemUsage><memoryUsage/></systemUsage>")


def test_memory_usage_reaches_the_broker_config(tmp_path: Path) -> None:
    xml = tmp_path / "activemq.xml"
    memory = usage(inner='<memoryUsage><memoryUsage limit="256 mb"/></memoryUsage>')
    xml.write_text(f'<beans><broker xmlns="http://activemq.apache.org/schema/core">{memory}</broker></beans>')
    config = build_config(xml, environ={})
    assert config.limits.memory_budget == 256 * MiB and config.limits.budget == 256 * MiB


def test_a_skipped_connector_is_named_and_the_rest_are_served() -> None:
    mapping = parse('<transportConnectors><transportConnector name="tls" uri="ssl://0.0.0.0:61617?'
                    'transport.needClientAuth=true"/><transportConnector name="s" uri="stomp://0.0.0.0:61613"/>'
                    "</transportConnectors>")
    assert mapping.values["connectors"] == ["tcp://0.0.0.0:61613"]
    assert mapping.warnings == [
        "ignored transportConnector[tls]: ssl:// connectors are not served by this BatonMQ"]
    every = parse_activemq_xml(b'<broker><transportConnectors><transportConnector uri="wss://h:1/"/>'
                               b"</transportConnectors></broker>")
    assert every.values["connectors"] == ["wss://h:1"]  # without `schemes`, every STOMP flavour is kept


def test_plugins_other_than_security_are_named_in_a_warning() -> None:
    mapping = parse("<plugins><statisticsBrokerPlugin/><loggingBrokerPlugin logAll=\"true\"/></plugins>")
    assert mapping.values == {}
    assert [line.partition(":")[0] for line in mapping.warnings] == [
        "ignored <plugins>/<statisticsBrokerPlugin>", "ignored <plugins>/<loggingBrokerPlugin>"]


def test_a_constant_pending_limit_for_every_topic_is_the_topic_pending_limit() -> None:
    strategy = ('<pendingMessageLimitStrategy><constantPendingMessageLimitStrategy limit="50"/>'
                "</pendingMessageLimitStrategy>")
    assert parse(policy(f'<policyEntry topic=">">{strategy}</policyEntry>')).values == {
        "limits": {"topic_pending_limit": 50}}
    narrow = parse(policy(f'<policyEntry topic="news.>">{strategy}</policyEntry>'))
    assert narrow.values == {} and "pendingMessageLimitStrategy" in narrow.warnings[0]


def test_memory_sizes_are_read_as_activemq_writes_them() -> None:
    from config.model import Limits

    limits = Limits(memory_budget="256 mb", connection_memory_limit="8MiB", destination_memory_limit="4096")
    assert (limits.budget, limits.connection_memory_limit, limits.destination_memory_limit) == (
        256 * MiB, 8 * MiB, 4096)
    assert Limits().budget >= 64 * MiB
    with pytest.raises(ValueError, match="connection_memory_limit"):
        Limits(memory_budget="16mb", connection_memory_limit="32mb")


def test_each_entrys_memory_limit_and_flow_control_become_a_policy() -> None:
    mapping = parse(policy('<policyEntry queue=">" memoryLimit="10mb" cursorMemoryHighWaterMark="50"/>',
                           '<policyEntry queue="ORDERS.>" memoryLimit="1mb" producerFlowControl="false"/>',
                           '<policyEntry topic="PRICES.>,RATES" producerFlowControl="true" '
                           'useCache="false"/>',
                           '<policyEntry queue="QUIET.>" gcInactiveDestinations="true"/>'))
    assert "limits" not in mapping.values and "store" not in mapping.values
    assert mapping.values["policy"] == [
        {"queue": ">", "memory_limit": 10 * MiB, "cursor_window": 5 * MiB},
        {"queue": "ORDERS.>", "memory_limit": MiB, "cursor_window": MiB * 70 // 100,  # ActiveMQ's 70%
         "producer_flow_control": False},
        {"topic": "PRICES.>", "producer_flow_control": True},  # a composite pattern: one policy per part
        {"topic": "RATES", "producer_flow_control": True},
    ]
    assert [line.partition(":")[0] for line in mapping.warnings] == [
        'ignored policyEntry[topic="PRICES.>,RATES"]@useCache',
        'ignored policyEntry[queue="QUIET.>"]@gcInactiveDestinations']


def test_xml_policies_load_and_a_bad_one_names_its_entry(tmp_path) -> None:
    from config.loader import build_config

    path = tmp_path / "activemq.xml"
    entries = ('<policyEntry queue="ORDERS.>" memoryLimit="8 mb" producerFlowControl="false"/>'
               '<policyEntry topic=">" memoryLimit="64mb"/>')
    path.write_text(f"<beans><broker>{policy(entries)}</broker></beans>")
    orders, topics = build_config(path, environ={}).policy
    assert (orders.queue, orders.memory_limit, orders.producer_flow_control) == ("ORDERS.>", 8 * MiB, False)
    assert (topics.topic, topics.cursor_window) == (">", 64 * MiB * 70 // 100)
    with pytest.raises(ConfigError) as info:
        parse(policy('<policyEntry queue="ORDERS.>.EU" memoryLimit="1mb"/>'))
    assert info.value.key == 'policyEntry[queue="ORDERS.>.EU"]@queue'
    with pytest.raises(ConfigError) as info:
        parse(policy('<policyEntry queue="A" producerFlowControl="maybe"/>'))
    assert info.value.key == 'policyEntry[queue="A"]@producerFlowControl'
    with pytest.raises(ConfigError) as info:
        parse(policy(entries, '<policyEntry queue="A,ORDERS.>" producerFlowControl="true"/>'))
    assert info.value.key == 'policyEntry[queue="A,ORDERS.>"]@queue'
    assert "'ORDERS.>' is given by an earlier queue entry too" in info.value.problem


def test_the_default_entry_sets_the_broker_wide_limit_and_temporary_entries_are_reported() -> None:
    default = parse("<destinationPolicy><policyMap><defaultEntry><policyEntry memoryLimit=\"1mb\" "
                    "producerFlowControl=\"false\"/></defaultEntry></policyMap></destinationPolicy>")
    assert default.values["limits"] == {"destination_memory_limit": MiB}
    assert default.values["store"] == {"cursor_window": 1 * MiB * 70 // 100}  # ActiveMQ's 70% default
    assert [line.partition(":")[0] for line in default.warnings] == [
        "ignored policyEntry[default]@producerFlowControl"]
    temporary = parse(policy('<policyEntry tempQueue="true" memoryLimit="1mb" producerFlowControl="false"/>'))
    assert "policy" not in temporary.values
    assert [line.partition(":")[0] for line in temporary.warnings] == [
        'ignored policyEntry[tempQueue="true"]@memoryLimit',
        'ignored policyEntry[tempQueue="true"]@producerFlowControl']


def test_memory_limit_settings_that_cannot_be_expressed_are_reported_or_refused() -> None:
    mapping = parse(policy('<policyEntry queue=">" cursorMemoryHighWaterMark="80"/>'))
    assert mapping.warnings == ['ignored policyEntry[queue=">"]@cursorMemoryHighWaterMark: has no effect '
                                "without memoryLimit, as in ActiveMQ"]
    with pytest.raises(ConfigError) as info:
        parse(policy('<policyEntry queue=">" memoryLimit="1mb" cursorMemoryHighWaterMark="170"/>'))
    assert info.value.key == 'policyEntry[queue=">"]@cursorMemoryHighWaterMark'
    with pytest.raises(ConfigError) as info:
        parse(policy('<policyEntry queue=">" memoryLimit="lots"/>'))
    assert info.value.key == 'policyEntry[queue=">"]@memoryLimit'
