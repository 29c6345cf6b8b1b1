"""The shipped example files load, and the TOML example documents every setting at its default."""

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel

from config.loader import build_config
from config.model import BrokerConfig

EXAMPLES = Path(__file__).resolve().parents[3] / "config" / "examples"
SHARED = Path("/sharedFileSystem/sharedBrokerData")


def test_toml_example_holds_exactly_the_defaults() -> None:
    config = build_config(EXAMPLES / "batonmq.toml", environ={})
    assert config == BrokerConfig(name="broker1", data_dir=SHARED)


def test_toml_example_mentions_every_setting() -> None:
    text = (EXAMPLES / "batonmq.toml").read_text()
    written = tomllib.loads(text)
    # A setting whose default is None cannot be written in TOML: it must appear commented out.
    missing = [key for key in _setting_keys(BrokerConfig) if not _present(written, key)]
    unset = [key for key in _setting_keys(BrokerConfig) if _default(BrokerConfig, key) is None]
    assert missing == unset and ("metrics_port",) in unset
    for key in unset:
        assert re.search(rf"^# {key[-1]} = \S", text, re.MULTILINE), key


def test_xml_example_maps_to_the_shared_directory_setup() -> None:
    config = build_config(EXAMPLES / "activemq.xml", environ={})
    assert config.name == "broker1"
    assert config.data_dir == SHARED  # the kahaDB directory, not dataDirectory
    assert config.store.type == "journal"
    assert config.store.journal_max_file_size == 32 * 1024 * 1024
    assert config.lock.keepalive_period == 0.5 and config.lock.acquire_interval == 0.2
    assert config.connectors == ["tcp://0.0.0.0:61616?maximumConnections=1000&wireFormat.maxFrameSize=104857600"]


def test_xml_example_with_its_ssl_connector_enabled_needs_only_the_pem_files(tmp_path: Path) -> None:
    text = (EXAMPLES / "activemq.xml").read_text()
    enabled = re.sub(r"<!-- (<transportConnector name=\"ssl\".*?/>) -->", r"\1", text)
    assert enabled != text, "the example carries a commented-out ssl:// connector"
    (tmp_path / "activemq.xml").write_text(enabled)
    overrides = {"tls": {"cert": "/etc/batonmq/broker.pem", "ca": "/etc/batonmq/ca.pem"}}
    config = build_config(tmp_path / "activemq.xml", environ={}, overrides=overrides)
    assert config.connectors[1] == "ssl://0.0.0.0:61617?transport.needClientAuth=true"


def test_examples_take_environment_and_flags_on_top() -> None:
    config = build_config(
        EXAMPLES / "activemq.xml", {"BATONMQ_NAME": "broker2"}, {"connectors": ["tcp://127.0.0.2:61616"]}
    )
    assert (config.name, config.connectors, config.data_dir) == ("broker2", ["tcp://127.0.0.2:61616"], SHARED)


def _setting_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _setting_keys(annotation, prefix + (name,))
        else:
            keys.append(prefix + (name,))
    return keys


def _present(tree: dict, key: tuple[str, ...]) -> bool:
    node = tree
    for part in key:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _default(model: type[BaseModel], key: tuple[str, ...]) -> object:
    for part in key[:-1]:
        annotation = model.model_fields[part].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation
    return model.model_fields[key[-1]].get_default(call_default_factory=True)
