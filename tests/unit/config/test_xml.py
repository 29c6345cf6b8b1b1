"""ActiveMQ-style XML mapping: the three stores, locker, connectors, strictness, hostile documents."""

import time

import pytest

from config.errors import ConfigError
from config.model import BrokerConfig, MiB
from config.xml import parse_activemq_xml

WRAP = """<?xml version="1.0"?>
<beans xmlns="http://www.springframework.org/schema/beans">
  <broker xmlns="http://activemq.apache.org/schema/core" {attrs}>
    <managementContext><managementContext createConnector="false"/></managementContext>
    {body}
    <plugins><statisticsBrokerPlugin/><timeStampingBrokerPlugin zeroExpirationOverride="1000"/></plugins>
  </broker>
</beans>"""


def mapped(body: str = "", attrs: str = "") -> dict:
    return parse_activemq_xml(WRAP.format(attrs=attrs, body=body).encode()).values


def error(body: str = "", attrs: str = "") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        mapped(body, attrs)
    assert "\n" not in str(info.value)
    return info.value


def adapter(element: str) -> str:
    return f"<persistenceAdapter>{element}</persistenceAdapter>"


def test_kahadb_attributes_and_locker() -> None:
    values = mapped(
        adapter(
            '<kahaDB directory="/shared" journalMaxFileLength="1gb" journalDiskSyncStrategy="PERIODIC"'
            ' journalDiskSyncInterval="250" checkpointInterval="7000" cleanupInterval="60000"'
            ' lockKeepAlivePeriod="2000"><locker><shared-file-locker lockAcquireSleepInterval="10000"/>'
            "</locker></kahaDB>"
        ),
        attrs='brokerName="b1" dataDirectory="/ignored"',
    )
    assert values == {
        "name": "b1",
        "data_dir": "/shared",  # the adapter's directory wins over dataDirectory
        "store": {
            "type": "journal",
            "journal_max_file_size": 1024 * MiB,
            "sync": "periodic",
            "sync_interval": 0.25,
            "checkpoint_interval": 7.0,
            "cleanup_interval": 60.0,
        },
        "lock": {"keepalive_period": 2.0, "acquire_interval": 10.0},
    }
    # ...and the model accepts all of it.
    assert BrokerConfig.model_validate(values).lock.acquire_interval == 10.0


def test_leveldb() -> None:
    values = mapped(adapter('<levelDB directory="/ldb" sync="false" lockKeepAlivePeriod="1000"/>'))
    assert values == {
        "data_dir": "/ldb",
        "store": {"type": "leveldb", "sync": "never"},
        "lock": {"keepalive_period": 1.0},
    }


def test_amq_persistence_adapter_is_appendlog() -> None:
    values = mapped(
        adapter('<amqPersistenceAdapter maxFileLength="1024kb" syncOnWrite="true"/>'), 'dataDirectory="/d"'
    )
    assert values == {
        "data_dir": "/d",
        "store": {"type": "appendlog", "appendlog_segment_size": MiB, "sync": "always"},
    }


def test_without_namespaces_or_beans_and_older_sync_flag() -> None:
    document = (
        b'<broker><persistenceAdapter><kahaDB enableJournalDiskSyncs="false"/></persistenceAdapter></broker>'
    )
    assert parse_activemq_xml(document).values == {"store": {"type": "journal", "sync": "never"}}


def test_connectors_are_normalised_and_their_options_kept_mapped_or_reported() -> None:
    mapping = parse_activemq_xml(WRAP.format(attrs="", body=(
        "<transportConnectors>"
        '<transportConnector name="openwire" uri="tcp://0.0.0.0:61616?maximumConnections=1000&amp;'
        'transport.maxFrameSize=104857600&amp;transport.tcpNoDelay=true"/>'
        '<transportConnector name="stomp" uri="stomp://127.0.0.2:61613"/>'
        '<transportConnector name="snio" uri="stomp+nio://localhost:61614?transport.hbGracePeriodMultiplier=1.5'
        '&amp;transport.connectAttemptTimeout=5000"/>'
        '<transportConnector uri="nio://[::1]:61615?transport.needClientAuth=true"/>'
        "</transportConnectors>")).encode())
    assert mapping.values == {
        "connectors": [
            # The connector's own limits stay on its URI (config/connector.py), under one spelling.
            "tcp://0.0.0.0:61616?maximumConnections=1000&wireFormat.maxFrameSize=104857600",
            "tcp://127.0.0.2:61613",
            "tcp://localhost:61614",
            "tcp://[::1]:61615",  # client auth means nothing without TLS
        ],
        "limits": {"heartbeat_grace": 1.5, "connect_timeout": 5.0},  # broker-wide
    }
    assert [line for line in mapping.warnings if "transportConnector" in line] == [
        "ignored transportConnector[openwire]@uri?transport.tcpNoDelay: TCP or JVM tuning with no equivalent "
        "here",
        "ignored transportConnector[3]@uri?transport.needClientAuth: client certificates apply to TLS "
        "connectors only",
    ]
    config = BrokerConfig.model_validate(mapping.values)
    assert (config.limits.heartbeat_grace, config.limits.connect_timeout) == (1.5, 5.0)

@pytest.mark.parametrize("scheme", ["ssl", "nio+ssl", "stomp+ssl", "stomp+nio+ssl"])
def test_every_ssl_flavour_is_our_tls_connector_with_its_options(scheme: str) -> None:
    uri = f"{scheme}://0.0.0.0:61617?transport.enabledProtocols=TLSv1.2&amp;transport.needClientAuth=true" \
          "&amp;wireFormat.maxFrameSize=1048576"
    values = mapped(f'<transportConnectors><transportConnector uri="{uri}"/></transportConnectors>')
    expected = "ssl://0.0.0.0:61617?transport.needClientAuth=true&wireFormat.maxFrameSize=1048576"
    assert values == {"connectors": [expected]}


def test_ssl_context_is_refused_with_the_pem_settings_named() -> None:
    err = error('<sslContext><sslContext keyStore="broker.ks" keyStorePassword="password"/></sslContext>')
    assert err.key == "sslContext"
    assert "tls.cert" in err.problem and "--tls-cert" in err.problem


@pytest.mark.parametrize(
    ("body", "attrs", "key", "problem"),
    [
        (
            adapter('<kahaDB foo="1"/>'),
            "",
            "kahaDB@foo",
            "unknown attribute (honoured here: checkpointInterval",
        ),
        ("", 'brokerName="b" schedulerSupport="true"', "broker@schedulerSupport", "only 'false' is accepted"),
        ("", 'brokerName="b" schedulerSuport="false"', "broker@schedulerSuport", "unknown attribute"),
        ("", 'persistent="false"', "broker@persistent", "must be true"),
        (
            adapter('<kahaDB lockKeepAlivePeriod="0"/>'),
            "",
            "kahaDB@lockKeepAlivePeriod",
            "0 would disable the lock keep-alive, which lets two masters run at once",
        ),
        (
            adapter('<kahaDB journalMaxFileLength="32 megs"/>'),
            "",
            "kahaDB@journalMaxFileLength",
            "expected a size",
        ),
        (
            adapter('<kahaDB journalDiskSyncStrategy="sometimes"/>'),
            "",
            "kahaDB@journalDiskSyncStrategy",
            "expected always, periodic or never (got 'sometimes')",
        ),
        (
            adapter('<kahaDB checkpointInterval="5s"/>'),
            "",
            "kahaDB@checkpointInterval",
            "expected a whole number",
        ),
        (
            adapter('<kahaDB enableJournalDiskSyncs="true" journalDiskSyncStrategy="always"/>'),
            "",
            "kahaDB@journalDiskSyncStrategy",
            "sets the same setting as kahaDB@enableJournalDiskSyncs",
        ),
        (adapter('<levelDB sync="maybe"/>'), "", "levelDB@sync", "expected true or false"),
        (
            adapter(""),
            "",
            "persistenceAdapter",
            "must contain exactly one of <kahaDB>, <levelDB>, <amqPersistenceAdapter> (got nothing)",
        ),
        (adapter("<kahaDB/><levelDB/>"), "", "persistenceAdapter", "must contain exactly one"),
        (adapter("<jdbcPersistenceAdapter/>"), "", "persistenceAdapter", "must contain exactly one"),
        (
            adapter("<kahaDB><locker><lease-database-locker/></locker></kahaDB>"),
            "",
            "locker",
            "must contain exactly one <shared-file-locker> (got <lease-database-locker>)",
        ),
        (
            adapter('<kahaDB><locker><shared-file-locker failIfLocked="true"/></locker></kahaDB>'),
            "",
            "shared-file-locker@failIfLocked",
            "only 'false' is accepted: a broker that finds the lock held waits as a slave",
        ),
        (adapter("<kahaDB><usage/></kahaDB>"), "", "kahaDB/usage", "unknown element"),
        (
            '<transportConnectors><transportConnector name="a" uri="amqp://0.0.0.0:5672"/></transportConnectors>',
            "",
            "transportConnectors",
            "none of them is a connector BatonMQ serves",
        ),
        (
            '<transportConnectors><transportConnector name="a" uri="gopher://0.0.0.0:70"/></transportConnectors>',
            "",
            "transportConnector[a]@uri",
            "scheme 'gopher' is not served",
        ),
        (
            '<transportConnectors><transportConnector name="a" uri="tcp://h:1?x=y"/></transportConnectors>',
            "",
            "transportConnector[a]@uri?x",
            "unknown connector option (honoured: maximumConnections, wireFormat.maxFrameSize",
        ),
        (
            '<transportConnectors><transportConnector name="a" uri="tcp://h:1?transport.connectAttemptTimeout=1000"/>'
            '<transportConnector name="b" uri="tcp://h:2?transport.connectAttemptTimeout=2000"/>'
            "</transportConnectors>",
            "",
            "transportConnector[b]@uri?transport.connectAttemptTimeout",
            "2.0 differs from 1.0 given by transportConnector[a]@uri?transport.connectAttemptTimeout",
        ),
        (
            '<transportConnectors><transportConnector name="a" uri="tcp://h:1?allowLinkStealing=true"/>'
            "</transportConnectors>",
            "",
            "transportConnector[a]@uri?allowLinkStealing",
            "only 'false' is accepted",
        ),
        (
            '<transportConnectors><transportConnector name="a" uri="tcp://0.0.0.0"/></transportConnectors>',
            "",
            "transportConnector[a]@uri",
            "expected SCHEME://HOST:PORT",
        ),
        (
            '<transportConnectors><transportConnector name="a" uri="tcp://h:99999"/></transportConnectors>',
            "",
            "transportConnector[a]@uri",
            "Port out of range",
        ),
        (
            '<transportConnectors><transportConnector name="a"/></transportConnectors>',
            "",
            "transportConnector[a]@uri",
            "missing",
        ),
        (
            '<transportConnectors><transportConnector uri="tcp://h:1" updateClusterClient="true"/>'
            "</transportConnectors>",
            "",
            "transportConnector[0]@updateClusterClient",
            "unknown attribute",
        ),
        (
            '<transportConnectors><transportConnector name="a" uri="tcp://h:1"/>'
            '<transportConnector name="b" uri="stomp://h:1"/></transportConnectors>',
            "",
            "transportConnector[b]@uri",
            "tcp://h:1 is already used by transportConnector[a]",
        ),
        (
            '<transportConnectors><transportConnector name="a" uri="tcp://h:1"/>'
            '<transportConnector name="b" uri="ssl://h:1?maximumConnections=5"/></transportConnectors>',
            "",
            "transportConnector[b]@uri",
            "ssl://h:1 is already used by transportConnector[a]",
        ),
        ("<persistenceFactory/>", "", "persistenceFactory", "journaled JDBC is not supported"),
        ("<persistanceAdapter/>", "", "persistanceAdapter", "unknown element in <broker>"),
        (
            '<networkConnectors><networkConnector uri="static:(tcp://h:1)"/></networkConnectors>',
            "",
            "networkConnectors",
            "networks of brokers are not supported",
        ),
        (
            "<destinationInterceptors><virtualDestinationInterceptor/></destinationInterceptors>",
            "",
            "destinationInterceptors",
            "virtual and mirrored destinations are not supported",
        ),
        (adapter('<kahaDB useLock="false"/>'), "", "kahaDB@useLock", "only 'true' is accepted"),
    ],
)
def test_errors_name_element_and_attribute(body: str, attrs: str, key: str, problem: str) -> None:
    err = error(body, attrs)
    assert err.key == key
    assert err.problem.startswith(problem), err.problem


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"<beans/>", "no <broker> element"),
        (b"<beans><broker/><x><broker/></x></beans>", "2 <broker> elements (expected one)"),
    ],
)
def test_broker_element_must_appear_once(document: bytes, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_activemq_xml(document, "a.xml")
    assert (info.value.key, info.value.problem) == ("broker", f"a.xml: {problem}")


def test_malformed_xml_reports_position() -> None:
    with pytest.raises(ConfigError) as info:
        parse_activemq_xml(b"<beans>\n  <broker>\n</beans>", "a.xml")
    assert info.value.key == "<file>"
    assert info.value.problem.startswith("a.xml: invalid XML: mismatched tag: line 3, column 2")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<broker brokerName="&lol9;"/>"""


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS,
        b'<!DOCTYPE b [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><broker brokerName="&xxe;"/>',
        b'<!DOCTYPE b [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><broker/>',
        b'<!DOCTYPE beans SYSTEM "http://192.0.2.1/spring-beans.dtd"><beans><broker/></beans>',
    ],
    ids=["billion-laughs", "external-entity", "external-parameter-entity", "external-dtd"],
)
def test_hostile_xml_is_refused_quickly(document: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        parse_activemq_xml(document, "evil.xml")
    assert time.monotonic() - started < 2.0
    assert info.value.key == "<file>"
    assert info.value.problem.startswith("evil.xml: refused unsafe XML: <!DOCTYPE> is not allowed")


def test_external_dtd_is_refused_not_fetched(tmp_path) -> None:
    # expat would not load it, but would silently expand the undefined entity to "" -- an empty
    # directory attribute would mean "the current directory". So any DOCTYPE is refused.
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY dir "/elsewhere">')
    document = f'<!DOCTYPE broker SYSTEM "{dtd.as_uri()}"><broker dataDirectory="&dir;"/>'.encode()
    with pytest.raises(ConfigError, match=r"refused unsafe XML: <!DOCTYPE> is not allowed"):
        parse_activemq_xml(document, "evil.xml")
