"""`batonmq start --config activemq.xml` with a user's existing file: the stock one of ActiveMQ 5.17.2
runs a real broker, with one WARNING per ignored element, and a connector's URI options reach it."""

from __future__ import annotations

import re

from tests.helpers.cluster import free_port, serves
from tests.helpers.daemon import daemon
from tests.helpers.rawstomp import RawStomp
from tests.unit.config.test_xml_compat import STOCK

MASTER = r"role recovering -> master"


def test_stock_activemq_xml_runs_a_broker(tmp_path):
    port = free_port(("127.0.0.1",))
    # The stock ports are fixed (61616, 61613): a test binds its own, and the rest comes from the file.
    args = ["--config", str(STOCK / "activemq-5.17.2.xml"), "--connector", f"tcp://127.0.0.1:{port}"]
    with daemon(args, env={"ACTIVEMQ_BASE": str(tmp_path)}) as broker:
        broker.wait_for(MASTER)
        assert serves("127.0.0.1", port)
        store = tmp_path / "data" / "kahadb"  # kahaDB directory="${activemq.data}/kahadb"
        assert (store / "lock").exists() and (store / "STORE").read_text().strip() == "journal"
        assert broker.stop() == 0
    warned = [line for line in broker.lines if ": ignored " in line]
    ignored = [re.sub(r".*: ignored ([^:]+): .*", r"\1", line) for line in warned]
    # The stock pendingMessageLimitStrategy is read (limits.topic_pending_limit), not reported.
    assert ignored[:3] == ["<managementContext>", "memoryUsage/memoryUsage@percentOfJvmHeap",
                           "transportConnector[amqp]"]
    assert all(" WARNING batonmq.config: " in line for line in warned)
    assert len(ignored) == len(set(ignored))  # one line each
    assert broker.lines[-1].endswith("broker localhost: stopped, exit 0")


def test_connector_options_from_the_file_limit_the_broker(tmp_path):
    port = free_port(("127.0.0.1",))
    config = tmp_path / "activemq.xml"
    config.write_text(f"""<beans xmlns="http://www.springframework.org/schema/beans">
      <broker xmlns="http://activemq.apache.org/schema/core" brokerName="b1" dataDirectory="{tmp_path / 'd'}">
        <transportConnectors>
          <transportConnector name="stomp" uri="stomp://127.0.0.1:{port}?maximumConnections=1&amp;transport.tcpNoDelay=true"/>
        </transportConnectors>
      </broker></beans>""")
    with daemon(["--config", str(config)]) as broker:
        broker.wait_for(MASTER)
        with RawStomp("127.0.0.1", port) as first, RawStomp("127.0.0.1", port) as second:
            assert first.connect().startswith("CONNECTED")
            refused = second.connect()
        assert refused.startswith("ERROR") and "too many connections" in refused
        assert broker.stop() == 0
    assert any(line.endswith("ignored transportConnector[stomp]@uri?transport.tcpNoDelay: TCP or JVM tuning "
                             "with no equivalent here") for line in broker.lines)
