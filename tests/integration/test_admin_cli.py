"""`batonmq admin list|brokers|browse|purge|move|delete|remove` against a real broker process: tables,
--json, one-line errors and exit codes (docs/admin.md, "Command line")."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers.adminhttp import HOST, AdminBroker, admin_cli, depth
from tests.helpers.cluster import free_port
from tests.helpers.stomppy import send_receipted

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminBroker]:
    node = AdminBroker("cli-admin", tmp_path_factory.mktemp("cli-admin") / "data").start()
    try:
        yield node
    finally:
        node.proc.stop()


def ok(*args: str) -> str:
    done = admin_cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def test_list_browse_and_brokers_as_tables_and_json(broker: AdminBroker) -> None:
    bodies = [f"order {i}" for i in range(4)]
    assert send_receipted(HOST, broker.port, "/queue/cli.orders", bodies) == bodies
    table = ok("list", "--url", broker.url).splitlines()
    assert table[0].split() == ["DESTINATION", "KIND", "DEPTH", "PAGED", "SPILLED", "IN-FLIGHT", "CONSUMERS",
                                "ENQUEUED", "DEQUEUED", "POLICY", "OLDEST"]
    (row,) = [line.split() for line in table[1:] if line.startswith("/queue/cli.orders ")]
    assert row[:10] == ["/queue/cli.orders", "queue", "4", "0", "0", "0", "0", "4", "0", "default"]
    assert row[10].endswith("s")
    listed = json.loads(ok("list", "--url", broker.url, "--json"))
    assert {"name": "/queue/cli.orders", "depth": 4}.items() <= next(
        d for d in listed["destinations"] if d["name"] == "/queue/cli.orders").items()
    browsed = ok("browse", "cli.orders", "--url", broker.url, "--limit", "2").splitlines()
    assert browsed[0] == "/queue/cli.orders: 4 waiting, 0 in flight"
    assert browsed[1].split()[:2] == ["ID", "PRIORITY"] and len(browsed) == 4
    assert browsed[2].endswith("order 0") and browsed[3].endswith("order 1")
    page = json.loads(ok("browse", "/queue/cli.orders", "--url", broker.url, "--offset", "3", "--json"))
    assert [m["body"] for m in page["messages"]] == ["order 3"]
    group = ok("brokers", "--url", broker.url).splitlines()
    assert group[0].startswith("master: cli-admin on ") and "epoch 1" in group[0]
    assert group[1].split()[:3] == ["BROKER", "HOST", "ROLE"] and group[2].split()[0] == "cli-admin"
    assert "master" in group[2].split()


def test_move_remove_purge_delete(broker: AdminBroker) -> None:
    bodies = [f"job {i}" for i in range(5)]
    assert send_receipted(HOST, broker.port, "/queue/cli.jobs", bodies) == bodies
    moved = ok("move", "cli.jobs", "--to", "cli.later", "--limit", "2", "--url", broker.url)
    assert moved.strip() == "moved 2 message(s) from /queue/cli.jobs (2 to /queue/cli.later); 0 skipped"
    copied = json.loads(ok("move", "cli.later", "--to", "/queue/cli.copy", "--copy", "--url", broker.url,
                           "--json"))
    assert (copied["copied"], copied["targets"]) == (2, {"/queue/cli.copy": 2})
    first = json.loads(ok("browse", "cli.jobs", "--url", broker.url, "--json"))["messages"][0]
    assert first["body"] == "job 2"
    assert ok("remove", "cli.jobs", first["id"], "--url", broker.url).strip() == \
        f"removed {first['id']} from /queue/cli.jobs"
    one = json.loads(ok("browse", "cli.jobs", "--url", broker.url, "--json"))["messages"][0]
    moved_one = ok("move", "cli.jobs", "--id", one["id"], "--to", "cli.later", "--url", broker.url)
    assert moved_one.startswith("moved 1 ")
    assert ok("purge", "cli.jobs", "--url", broker.url).strip() == "purged 1 message(s) from /queue/cli.jobs"
    assert depth(broker, "/queue/cli.later") == 3 and depth(broker, "/queue/cli.copy") == 2
    assert ok("delete", "/queue/cli.copy", "--url", broker.url).strip() == \
        "deleted /queue/cli.copy (2 message(s) purged)"
    assert depth(broker, "/queue/cli.copy") is None


def test_errors_are_one_line_with_their_exit_code(broker: AdminBroker) -> None:
    missing = admin_cli("purge", "cli.none", "--url", broker.url)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "batonmq admin purge: 404 no queue /queue/cli.none\n"
    unreachable = admin_cli("list", "--url", f"http://{HOST}:{free_port((HOST,))}")
    assert unreachable.returncode == 1 and unreachable.stderr.count("\n") == 1
    assert unreachable.stderr.startswith("batonmq admin list: cannot reach http://")
    bad_url = admin_cli("list", "--url", "tcp://127.0.0.1:61616")
    assert bad_url.returncode == 2 and "expected http://HOST:PORT" in bad_url.stderr
    bad_destination = admin_cli("browse", "/nowhere/x", "--url", broker.url)
    assert bad_destination.returncode == 2 and bad_destination.stderr.count("\n") == 1
    usage = admin_cli("move", "--url", broker.url)
    assert usage.returncode == 2 and "QUEUE" in usage.stderr
