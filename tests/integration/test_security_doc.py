"""The activemq.xml example of docs/security.md loads, and a real broker enforces it on stomp.py."""

from __future__ import annotations

import re
from pathlib import Path

from broker.engine.users import build_authenticator
from config.loader import build_config
from tests.helpers.secure import Peer, peers
from tests.helpers.server import HOST, BrokerThread

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_the_documented_activemq_xml_is_enforced(tmp_path: Path) -> None:
    text = DOC.read_text()
    section = text[text.index("## Example: activemq.xml with both plugins"):]
    xml = re.findall(r"```xml\n(.*?)```", section, re.DOTALL)[0]
    path = tmp_path / "activemq.xml"
    path.write_text(xml)
    config = build_config(path, environ={},
                          overrides={"connectors": [f"tcp://{HOST}:0"], "data_dir": str(tmp_path)})
    assert config.connectors == [f"tcp://{HOST}:0"] and config.authorization.enabled
    broker = BrokerThread(config, authenticator=build_authenticator(config.authentication)).start()
    try:
        with peers() as made:
            def login(name: str | None, password: str | None) -> Peer:
                made.append(Peer(broker.port, name, password))
                return made[-1]

            assert not login(None, None).connected()  # anonymousAccessAllowed="false"
            assert not login("app", "change-me").connected()
            admin, app = login("admin", "change-me"), login("app", "app-secret")
            assert admin.connected() and app.connected()
            assert app.send("/queue/ORDERS.eu", "order", receipt="o") == "o"
            refused = app.send("/queue/PAYROLL", "no", receipt="p")
            assert refused.headers["message"] == "write access denied on /queue/PAYROLL"
            assert admin.send("/topic/EVENTS.deploy", "v2", receipt="e") == "e"  # creates the topic
            assert app.subscribe("/topic/EVENTS.deploy") == "sub"
            refused = app.send("/topic/EVENTS.deploy", "fake", receipt="f")
            assert refused.headers["message"] == "write access denied on /topic/EVENTS.deploy"
            assert admin.send("/topic/EVENTS.deploy", "v3", receipt="e2") == "e2"
            assert app.get().body == "v3"
    finally:
        broker.stop()
