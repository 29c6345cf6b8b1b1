"""docker-compose.yml: three brokers on one shared volume, each reachable on its own host port.

PyYAML is not a dependency, so the file is read with a tiny parser for the YAML subset it uses
(block mappings, block sequences of scalars, `|` literal blocks, quoted and plain scalars). If PyYAML
happens to be installed, its reading must agree with the tiny parser's.
"""

import argparse
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from config.loader import build_config
from config.model import connector_address

COMPOSE = Path(__file__).resolve().parents[3] / "docker-compose.yml"
SHARED = "/sharedFileSystem/sharedBrokerData"
_KEY = re.compile(r"^([A-Za-z0-9_.-]+):(?:\s+(.*))?$")


def parse_yaml_subset(text: str) -> Any:
    value, end = _node(text.splitlines(), 0, -1)
    assert end == len(text.splitlines())
    return value


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _skip(lines: list[str], i: int) -> int:
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
        i += 1
    return i


def _node(lines: list[str], i: int, parent: int) -> tuple[Any, int]:
    i = _skip(lines, i)
    if i == len(lines) or _indent(lines[i]) <= parent:
        return None, i
    if lines[i].lstrip().startswith("- "):
        return _sequence(lines, i, _indent(lines[i]))
    return _mapping(lines, i, _indent(lines[i]))


def _mapping(lines: list[str], i: int, indent: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while (i := _skip(lines, i)) < len(lines) and _indent(lines[i]) >= indent:
        assert _indent(lines[i]) == indent, f"line {i + 1}: unexpected indent"
        match = _KEY.match(lines[i].strip())
        assert match, f"line {i + 1}: not a 'key: value' line"
        key, rest = match.group(1), (match.group(2) or "").strip()
        assert key not in out, f"line {i + 1}: duplicate key {key}"
        out[key], i = _value(lines, i, indent, rest)
    return out, i


def _sequence(lines: list[str], i: int, indent: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    while (i := _skip(lines, i)) < len(lines) and _indent(lines[i]) >= indent:
        assert _indent(lines[i]) == indent and lines[i].lstrip().startswith("- "), f"line {i + 1}"
        item, i = _value(lines, i, indent, lines[i].strip()[2:].strip())
        out.append(item)
    return out, i


def _value(lines: list[str], i: int, indent: int, rest: str) -> tuple[Any, int]:
    if rest in ("|", "|-"):
        return _literal(lines, i + 1, indent, keep_newline=rest == "|")
    if rest:
        return _scalar(rest), i + 1
    return _node(lines, i + 1, indent)


def _literal(lines: list[str], i: int, parent: int, keep_newline: bool) -> tuple[str, int]:
    body: list[str] = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > parent):
        body.append(lines[i])
        i += 1
    while body and not body[-1].strip():
        body.pop()
    margin = min(_indent(line) for line in body if line.strip())
    return "\n".join(line[margin:] for line in body) + ("\n" if keep_newline else ""), i


def _scalar(text: str) -> Any:
    if text[0] in "\"'":
        assert text.endswith(text[0]) and len(text) > 1, f"unterminated quote: {text}"
        return text[1:-1]
    text = text.split(" #", 1)[0].strip()
    return {"true": True, "false": False}.get(text, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = COMPOSE.read_text()
    data = parse_yaml_subset(text)
    try:
        import yaml  # only if the environment already has it; not a dependency
    except ImportError:
        return data
    assert yaml.safe_load(text) == data
    return data


def start_flags(service: dict[str, Any]) -> argparse.Namespace:
    assert service["command"][:2] == ["sh", "-ec"]
    script = service["command"][2].strip().splitlines()
    words = shlex.split(script[-1])
    assert words[:5] == ["exec", "python", "-m", "broker", "start"]
    parser = argparse.ArgumentParser(exit_on_error=False)
    for flag in ("--name", "--data", "--metrics-port", "--metrics-host"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--connector", action="append", required=True)
    return parser.parse_args(words[5:])


def test_three_brokers_share_one_named_volume(compose: dict[str, Any]) -> None:
    assert sorted(compose["services"]) == ["broker1", "broker2", "broker3"]
    assert "shared-broker-data" in compose["volumes"]
    for service in compose["services"].values():
        assert service["image"] == "python:3.11-slim"
        assert service["restart"] == "unless-stopped"
        assert f"shared-broker-data:{SHARED}" in service["volumes"]
        assert ".:/app:ro" in service["volumes"]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_each_broker_publishes_its_own_host_ports(compose: dict[str, Any], n: int) -> None:
    service = compose["services"][f"broker{n}"]
    flags = start_flags(service)
    assert flags.name == f"broker{n}"
    assert flags.data == SHARED
    (connector,) = flags.connector
    host, port = connector_address(connector)
    assert host == "0.0.0.0"  # inside the container, so the published port reaches it
    assert flags.metrics_host == "0.0.0.0"  # likewise: the default, loopback, is unreachable from outside
    assert service["ports"] == [f"{61616 + n}:{port}", f"{9100 + n}:{flags.metrics_port}"]
    # The settings the command passes are valid broker settings.
    config = build_config(
        environ={},
        overrides={
            "name": flags.name,
            "data_dir": flags.data,
            "connectors": flags.connector,
            "metrics_port": flags.metrics_port,
            "metrics_host": flags.metrics_host,
        },
    )
    assert (config.name, str(config.data_dir), config.metrics_port) == (f"broker{n}", SHARED, 9100)
    assert config.metrics_host == "0.0.0.0"


def test_tiny_parser_rejects_what_it_does_not_understand() -> None:
    with pytest.raises(AssertionError):
        parse_yaml_subset("a: 1\n   b: 2\n")
    with pytest.raises(AssertionError):
        parse_yaml_subset("a: 1\na: 2\n")
    assert parse_yaml_subset("a:\n  - x\n  - |\n    l1\n    l2\nb: 'q # r'\n") == {
        "a": ["x", "l1\nl2\n"],
        "b": "q # r",
    }


@pytest.mark.parametrize("n", [1, 2, 3])
def test_the_compose_command_is_valid_for_the_real_command_line(compose: dict[str, Any], n: int) -> None:
    """The flags each container passes are accepted by `batonmq start` and make a valid config."""
    from broker.daemon.cli import build_parser, start_overrides

    script = compose["services"][f"broker{n}"]["command"][2].strip().splitlines()
    words = shlex.split(script[-1])
    args = build_parser().parse_args(words[4:])  # after "exec python -m broker"
    assert args.command == "start"
    config = build_config(None, {}, start_overrides(args))
    assert config.name == f"broker{n}"
    assert str(config.data_dir) == SHARED
    assert config.metrics_port == 9100


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed")
def test_docker_compose_itself_validates_the_file() -> None:
    # No engine is needed for `config`: it parses, interpolates and validates against the schema.
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
