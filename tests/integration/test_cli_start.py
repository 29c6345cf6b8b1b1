"""`batonmq start` with an invalid configuration: exit 2 and one stderr line naming the key.

None of these cases reaches the daemon: the configuration is refused before anything starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "batonmq"


def start(
    *args: str, env: dict[str, str] | None = None, script: bool = False
) -> subprocess.CompletedProcess[str]:
    command = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "broker"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BATONMQ_")}
    environ.update(env or {})
    return subprocess.run([*command, "start", *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env=environ, check=False)


def assert_config_error(result: subprocess.CompletedProcess[str], key: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # one line, never a traceback
    assert lines[0].startswith(f"batonmq: invalid configuration: {key}: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ('name = "b"\nbogus = 1\n', "bogus"),
        ("[lock]\nkeepalive_period = -1\n", "lock.keepalive_period"),
        ('[store]\ntype = "kahadb"\n', "store.type"),
        ('connectors = ["udp://0.0.0.0:1"]\n', "connectors"),
        ("name = \n", "<file>"),  # TOML syntax
    ],
)
def test_invalid_toml_file(tmp_path, content, key):
    config = tmp_path / "batonmq.toml"
    config.write_text(content)
    line = assert_config_error(start("--config", str(config)), key)
    if key != "<file>":
        assert str(config) in line  # says which source the bad value came from


def test_invalid_xml_file(tmp_path):
    config = tmp_path / "activemq.xml"
    config.write_text('<beans><broker brokerName="b"><persistenceAdapter><kahaDB directory="d" bogus="1"/>'
                      "</persistenceAdapter></broker></beans>")
    line = assert_config_error(start("--config", str(config)), "kahaDB@bogus")
    assert "bogus" in line


def test_missing_file_and_config_from_environment(tmp_path):
    assert_config_error(start("--config", str(tmp_path / "absent.toml")), "<file>")
    bad = tmp_path / "env.toml"
    bad.write_text("[limits]\nmax_frame_size = 1\n")
    assert_config_error(start(env={"BATONMQ_CONFIG": str(bad)}), "limits.max_frame_size")


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        (["--store", "mongodb"], "store.type"),
        (["--metrics-port", "seventy"], "metrics_port"),
        (["--connector", "tcp://nohostport"], "connectors"),
        (["--lock-acquire-interval", "0"], "lock.acquire_interval"),
        (["--on-lock-lost", "panic"], "lock.on_lock_lost"),
    ],
)
def test_invalid_flag_values(tmp_path, flags, key):
    line = assert_config_error(start("--data", str(tmp_path), *flags), key)
    assert "command line" in line


def test_flags_override_the_environment(tmp_path):
    # The environment's bad value is replaced by the flag's bad value: the error names the flag's.
    result = start("--data", str(tmp_path), "--store", "flagstore", env={"BATONMQ_STORE": "envstore"})
    assert "flagstore" in assert_config_error(result, "store.type")


def test_console_script_reports_the_same(tmp_path):
    assert CONSOLE_SCRIPT.exists()
    assert_config_error(start("--data", str(tmp_path), "--store", "nope", script=True), "store.type")


def test_unknown_connector_scheme_names_the_known_ones(tmp_path):
    # config checks only SCHEME://HOST:PORT; the transports' scheme table refuses the scheme itself.
    result = start("--data", str(tmp_path), "--connector", "mqtt://127.0.0.1:1883")
    line = assert_config_error(result, "connectors")
    known = "ssl://, stomp://, stomp+ssl://, tcp://, ws://, wss://"
    assert line.endswith(f"connector 'mqtt://127.0.0.1:1883': scheme must be one of {known}"
                         " (got 'mqtt') [from command line]"), line
    assert not (tmp_path / "lock").exists()  # refused before the broker took anything
    config = tmp_path / "batonmq.toml"
    config.write_text('connectors = ["tcp://127.0.0.1:0", "amqp://127.0.0.1:5672"]\n')
    line = assert_config_error(start("--data", str(tmp_path), "--config", str(config)), "connectors")
    known = "ssl://, stomp://, stomp+ssl://, tcp://, ws://, wss://"
    assert "(got 'amqp')" in line and known in line and str(config) in line
