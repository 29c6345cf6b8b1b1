"""BATONMQ_* environment variables -> nested overrides."""

import pytest

from config.env import env_overrides
from config.errors import ConfigError


def test_shortcuts_map_to_settings() -> None:
    environ = {
        "BATONMQ_NAME": "b1",
        "BATONMQ_DATA": "/shared",
        "BATONMQ_STORE": "leveldb",
        "BATONMQ_CONNECTORS": "tcp://127.0.0.2:7000, tcp://127.0.0.3:7000,",
        "BATONMQ_METRICS_PORT": "9100",
        "BATONMQ_LOCK_ACQUIRE_INTERVAL": "0.1",
        "BATONMQ_LOCK_KEEPALIVE_PERIOD": "0.3",
    }
    assert env_overrides(environ) == {
        "name": "b1",
        "data_dir": "/shared",
        "store": {"type": "leveldb"},
        "connectors": ["tcp://127.0.0.2:7000", "tcp://127.0.0.3:7000"],
        "metrics_port": "9100",
        "lock": {"acquire_interval": "0.1", "keepalive_period": "0.3"},
    }


def test_generic_nested_names_and_unrelated_variables() -> None:
    environ = {
        "BATONMQ_LIMITS__MAX_FRAME_SIZE": "2048",
        "BATONMQ_STORE__SYNC": "never",
        "BATONMQ_CONFIG": "/etc/batonmq.toml",  # read by the CLI, not a setting
        "PATH": "/usr/bin",
        "batonmq_name": "lower case is not ours",
    }
    assert env_overrides(environ) == {"limits": {"max_frame_size": "2048"}, "store": {"sync": "never"}}


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("BATONMQ_LIMITS__MAX_FRAMESIZE", "did you mean BATONMQ_LIMITS__MAX_FRAME_SIZE?"),
        ("BATONMQ_NAMES", "did you mean BATONMQ_NAME?"),
        ("BATONMQ_NOPE__SYNC", ""),
        ("BATONMQ_NAME__X", ""),  # name is not a section
        ("BATONMQ_STORE__", ""),
    ],
)
def test_unknown_variables_are_named(name: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        env_overrides({name: "1"})
    assert info.value.key == name
    assert info.value.problem.startswith("unknown environment variable")
    assert hint in info.value.problem


def test_shortcut_and_nested_spelling_of_one_setting_conflict() -> None:
    with pytest.raises(ConfigError, match="same setting as BATONMQ_STORE"):
        env_overrides({"BATONMQ_STORE": "journal", "BATONMQ_STORE__TYPE": "leveldb"})
