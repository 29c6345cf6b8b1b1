"""build_config: precedence of the four layers and one-line errors for every bad input."""

import time
from pathlib import Path

import pytest

from broker.daemon.cli import build_parser, start_overrides
from config.errors import ConfigError
from config.loader import MAX_FILE_BYTES, build_config, deep_merge
from config.model import BrokerConfig, StoreSettings
from transports.registry import SCHEMES

TOML = """
name = "from-file"
data_dir = "/file/data"
connectors = ["tcp://127.0.0.2:7001"]
metrics_port = 9200

[store]
type = "appendlog"
sync = "periodic"
sync_interval = 2.5

[lock]
acquire_interval = 1.0
keepalive_period = 2.0

[limits]
max_frame_size = 4096
max_connections = 7
"""


def write(tmp_path: Path, text: str, name: str = "batonmq.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(**kwargs: object) -> ConfigError:
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as info:
        build_config(**kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return info.value


def test_defaults_without_any_source() -> None:
    assert build_config(environ={}) == BrokerConfig(name=build_config(environ={}).name)


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    environ = {
        "BATONMQ_NAME": "from-env",
        "BATONMQ_STORE": "leveldb",
        "BATONMQ_LOCK_ACQUIRE_INTERVAL": "0.5",
        "BATONMQ_LIMITS__MAX_FRAME_SIZE": "8192",
        "BATONMQ_CONNECTORS": "tcp://127.0.0.3:7002,tcp://127.0.0.4:7002",
    }
    overrides = {
        "name": "from-flag",
        "lock": {"acquire_interval": 0.1},
        "connectors": ["tcp://127.0.0.5:7003"],
        "metrics_port": None,  # flag not given: does not hide the file's value
    }
    config = build_config(write(tmp_path, TOML), environ, overrides)
    assert config.name == "from-flag"  # flag > env > file
    assert config.lock.acquire_interval == 0.1  # flag > env > file
    assert config.connectors == ["tcp://127.0.0.5:7003"]  # lists replace, never concatenate
    assert config.store.type == "leveldb"  # env > file
    assert config.limits.max_frame_size == 8192  # env > file
    assert config.store.sync == "periodic" and config.store.sync_interval == 2.5  # file, merged per key
    assert config.lock.keepalive_period == 2.0  # file, beside an env and a flag value in [lock]
    assert config.metrics_port == 9200 and config.data_dir == Path("/file/data")  # file
    assert config.limits.max_header_count == 1000  # default, beside file and env values in [limits]
    assert config.store.checkpoint_interval == 5.0  # default


def test_environ_none_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATONMQ_NAME", "process-env")
    assert build_config().name == "process-env"
    assert build_config(environ={}).name != "process-env"


def test_deep_merge_does_not_alias_or_mutate_inputs() -> None:
    base = {"lock": {"acquire_interval": 1}, "connectors": ["a"]}
    merged = deep_merge(base, {"lock": {"keepalive_period": 2}, "connectors": ["b"]})
    merged["lock"]["acquire_interval"] = 99
    assert base == {"lock": {"acquire_interval": 1}, "connectors": ["a"]}
    assert merged == {"lock": {"acquire_interval": 99, "keepalive_period": 2}, "connectors": ["b"]}


@pytest.mark.parametrize(
    ("kwargs", "key", "problem"),
    [
        (
            {"overrides": {"lock": {"keepalive_period": -1}}},
            "lock.keepalive_period",
            "must be greater than 0 (got -1) [from command line]",
        ),
        (
            {"environ": {"BATONMQ_STORE": "mysql"}},
            "store.type",
            "must be one of journal, leveldb, appendlog (got 'mysql') [from BATONMQ_STORE in environment]",
        ),
        (
            {"overrides": {"limits": {"max_framesize": 2048}}},
            "limits.max_framesize",
            "unknown setting (did you mean max_frame_size?) [from command line]",
        ),
        (
            {"environ": {"BATONMQ_METRICS_PORT": "http"}},
            "metrics_port",
            "must be a valid integer, unable to parse string as an integer (got 'http')"
            " [from BATONMQ_METRICS_PORT in environment]",
        ),
        ({"overrides": {"connectors": []}}, "connectors", "must have at least 1 item"),
        (
            {"overrides": {"connectors": ["http://h:1"]}, "schemes": SCHEMES},
            "connectors",
            "connector 'http://h:1': scheme must be",
        ),
        ({"overrides": {"store": "journal"}}, "store", "must be a valid dictionary"),
        (
            {"environ": {"BATONMQ_LOCK_KEEPALIVE_PERIOD": "0", "BATONMQ_LOCK_ACQUIRE_INTERVAL": "0"}},
            "lock.acquire_interval",
            "must be greater than 0 (got '0') [from BATONMQ_LOCK_ACQUIRE_INTERVAL in"
            " environment]; 1 more problem not shown",
        ),
        (
            {"environ": {"BATONMQ_LOCK__KEEPALIVE": "1"}},
            "BATONMQ_LOCK__KEEPALIVE",
            "unknown environment variable",
        ),
    ],
)
def test_errors_name_the_key_and_say_why_in_one_line(kwargs: dict, key: str, problem: str) -> None:
    error = error_of(**kwargs)
    assert error.key == key
    assert error.problem.startswith(problem), error.problem


def test_error_names_the_file_a_bad_value_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, "[lock]\nkeepalive_period = -1\n")
    error = error_of(file=path)
    assert (error.key, error.problem) == (
        "lock.keepalive_period",
        f"must be greater than 0 (got -1) [from {path}]",
    )
    # A flag that fixes the value wins, and the file's bad value no longer matters.
    assert build_config(path, {}, {"lock": {"keepalive_period": 1}}).lock.keepalive_period == 1


def test_unknown_top_level_table_in_file(tmp_path: Path) -> None:
    error = error_of(file=write(tmp_path, "[lmits]\nmax_frame_size = 1\n"))
    assert error.key == "lmits" and error.problem.startswith("unknown setting (did you mean limits?)")


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "x.toml"
    assert (error_of(file=missing).key, error_of(file=missing).problem) == (
        "<file>",
        f"no such file: {missing}",
    )
    assert error_of(file=tmp_path / "x.yaml").problem.endswith(
        "unsupported file type '.yaml'; use .toml or .xml"
    )
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    assert error_of(file=directory).problem == f"is a directory, not a file: {directory}"
    big = write(tmp_path, "#" * (MAX_FILE_BYTES + 1), "big.toml")
    assert "larger than 256 KiB" in error_of(file=big).problem
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"name = '\xff'\n")
    assert error_of(file=binary).problem == f"{binary}: not UTF-8 text (byte 8)"


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "b1"\n[store]\ntype journal\n')
    error = error_of(file=path)
    assert error.key == "<file>"
    assert error.problem.startswith(f"{path}: invalid TOML: ")
    assert "line 3, column 6" in error.problem


def test_xml_file_goes_through_the_same_layers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '<broker brokerName="x"><persistenceAdapter><levelDB/></persistenceAdapter></broker>',
        "activemq.xml",
    )
    config = build_config(path, {"BATONMQ_NAME": "env"}, {"store": {"type": "appendlog"}})
    assert (config.name, config.store.type) == ("env", "appendlog")
    # A value the XML maps but the model rejects names the attribute it came from.
    bad = write(
        tmp_path,
        '<broker><persistenceAdapter><kahaDB checkpointInterval="0"/></persistenceAdapter></broker>',
        "bad.xml",
    )
    error = error_of(file=bad)
    assert error.key == "store.checkpoint_interval"
    assert error.problem == f"must be greater than 0 (got 0.0) [from kahaDB@checkpointInterval in {bad}]"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        # tomllib is quadratic in the parts of a dotted key: 100,000 parts take ~20 s to parse.
        ("[" + "a." * 100_000 + "b]\n", "<file>", "line 1 is longer than 4096 characters"),
        ("a = " + "[\n" * 3000 + "]\n" * 3000, "<file>", "arrays or tables nested too deeply"),
        ("a = " + "{b=" * 1000 + "1" + "}" * 1000, "<file>", "arrays or tables nested too deeply"),
        ("[" + "a." * 2000 + "b]\nx = 1\n", "a.a.a.a.a.a.a.a", "nested more than 8 levels deep"),
        ("x = " + "[" * 20 + "]" * 20, "x[0][0][0][0][0][0][0]", "nested more than 8 levels deep"),
    ],
    ids=["long-dotted-key", "deep-array", "deep-inline-table", "deep-table", "deep-short-array"],
)
def test_hostile_toml_is_refused_quickly(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = write(tmp_path, text)
    started = time.monotonic()
    error = error_of(file=path)
    assert time.monotonic() - started < 2.0
    assert error.key == key
    assert problem in error.problem


def test_cursor_window_from_toml_variable_and_flag(tmp_path) -> None:
    assert StoreSettings().cursor_window == 4 * 1024 * 1024
    path = tmp_path / "batonmq.toml"
    path.write_text('[store]\ncursor_window = "64kb"\n')
    assert build_config(path, environ={}).store.cursor_window == 64 * 1024
    env = {"BATONMQ_STORE__CURSOR_WINDOW": "1 MiB"}
    assert build_config(path, environ=env).store.cursor_window == 1024 * 1024
    args = build_parser().parse_args(["start", "--cursor-window", "2048"])
    assert build_config(path, environ=env, overrides=start_overrides(args)).store.cursor_window == 2048
    with pytest.raises(ConfigError) as raised:
        build_config(path, environ={"BATONMQ_STORE__CURSOR_WINDOW": "100"})
    assert raised.value.key == "store.cursor_window"
