"""The documentation stays true: the client.md API example runs as written against a real group,
`--help` and the README's usage block agree, and no document links outside the repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config.model import BrokerConfig, LockSettings
from tests.helpers.cluster import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_PORT = 61616
# Brought up inside a fresh network namespace, where loopback starts down and 61616 is surely free.
NETNS = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "netns"]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, re.MULTILINE | re.DOTALL)


def usage_block(readme: str) -> str:
    blocks = re.findall(r"^```\n(batonmq start .*?)^```$", readme, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "the README has one usage block starting with `batonmq start`"
    return blocks[0]


def help_text(*command: str) -> str:
    result = subprocess.run([sys.executable, "-m", "broker", *command, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout


def flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) - {"--help"}


def _private_network() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run([*NETNS, "true"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


def test_client_md_api_example_runs_as_written(tmp_path):
    example = python_blocks((ROOT / "docs" / "client.md").read_text())[0]
    script = tmp_path / "example.py"
    if _private_network():
        script.write_text(example)
        command = [*NETNS, sys.executable, "-m", "tests.helpers.docexample", str(script),
                   "--port", str(DOCUMENTED_PORT)]
    else:
        # No namespace to make (not root): the same code, on a free port instead of the documented one.
        port = free_port()
        script.write_text(example.replace(f":{DOCUMENTED_PORT}", f":{port}"))
        command = [sys.executable, "-m", "tests.helpers.docexample", str(script), "--port", str(port)]
    drains = ["--drain", "/queue/orders", "--drain", "/queue/billing"]
    result = subprocess.run([*command, *drains], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    ran = json.loads(result.stdout.splitlines()[-1])
    assert ran["code"] == 0, ran["stderr"]
    assert ran["stdout"] == "got order 1 redelivered: False\nclosed\n"  # as client.md says below it
    # The selector took order 1; its ACK and the debit were committed together; order 2 stays.
    assert ran["drained"] == {"/queue/orders": ["order 2"], "/queue/billing": ["debit for order 1"]}


@pytest.mark.parametrize("command", ["start", "produce", "consume", "status"])
def test_readme_usage_block_lists_every_flag(command):
    block = usage_block((ROOT / "README.md").read_text())
    lines = re.findall(rf"^batonmq {command} .*(?:\n +\S.*)*", block, re.MULTILINE)
    assert len(lines) == 1, f"no `batonmq {command}` entry in the README usage block"
    missing = flags(help_text(command)) - flags(lines[0])
    assert not missing, f"README usage of `batonmq {command}` lacks {sorted(missing)}"


def test_start_help_shows_the_defaults_of_the_model():
    text = " ".join(help_text("start").partition("options:")[2].split())
    defaults = BrokerConfig(name="x")
    lock = LockSettings()
    expected = {
        "--data": f"(default ./{defaults.data_dir})",
        "--store": f"(default {defaults.store.type})",
        "--connector": f"(default {defaults.connectors[0]})",
        "--lock-acquire-interval": f"(default {lock.acquire_interval:g})",
        "--lock-keepalive-period": f"(default {lock.keepalive_period:g})",
        "--lock-timeout": f"(default {lock.lock_timeout:g}, or ten keep-alive periods if longer)",
        "--on-lock-lost": f"(default {lock.on_lock_lost})",
        "--metrics-port": "(default: not served)",
        "--log-level": "(default info)",
        "--connection-memory-limit": f"(default {defaults.limits.connection_memory_limit // 2**20}mb)",
        "--producer-flow-control-timeout": f"(default {defaults.limits.producer_flow_control_timeout:g})",
        "--memory-budget": "(default 20% of RAM, 64 MiB to 4 GiB)",
    }
    assert defaults.metrics_port is None  # what "not served" says
    for flag, default in expected.items():
        entry = re.search(rf"{flag} \S+ (.*?)(?= --[a-z]|$)", text)
        assert entry is not None and default in entry.group(1), (flag, default, entry and entry.group(1))


def test_no_document_links_outside_the_repository():
    documents = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.split()
    problems = []
    for name in documents:
        path = ROOT / name
        text = path.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"<(https?://[^>]+)>", text):
            local = target.partition("#")[0]
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                problems.append(f"{name}: {target} is outside the repository")
            elif local and not (path.parent / local).resolve().is_relative_to(ROOT):
                problems.append(f"{name}: {target} leaves the repository")
            elif local and not (path.parent / local).exists():
                problems.append(f"{name}: {target} does not exist")
        for mention in re.findall(r"\((\.\./[^)\s]+)\)", text):
            if not (path.parent / mention).resolve().is_relative_to(ROOT):
                problems.append(f"{name}: ({mention}) names a file outside the repository")
    assert problems == []
