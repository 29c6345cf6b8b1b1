"""The admin API with users and rights (docs/admin.md, "Security"): HTTP basic auth against the
STOMP users, the `admin` right per destination, refusals for a user without it, over HTTP and
from `batonmq admin`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.adminhttp import HOST, AdminBroker, admin_cli, depth
from tests.helpers.secure import CHEAP
from tests.integration.test_stomp_messaging import Peer

pytestmark = pytest.mark.timeout(120)

ADMIN = ("ops", "ops-secret")
APP = ("app", "app-secret")


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "batonmq.toml"
    path.write_text(f"""
[authentication]
failure_delay = 0.01
max_failure_delay = 0.2

[[authentication.users]]
name = "ops"
password_hash = "{CHEAP.hash(ADMIN[1])}"
groups = ["admins"]

[[authentication.users]]
name = "app"
password_hash = "{CHEAP.hash(APP[1])}"
groups = ["apps"]

[[authorization.entries]]
queue = ">"
read = "admins"
write = "admins"
admin = "admins"

[[authorization.entries]]
queue = "shop"
read = "apps"
write = "apps"
admin = "apps"
""")
    return path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminBroker]:
    tmp_path = tmp_path_factory.mktemp("secure-admin")
    node = AdminBroker("secure-admin", tmp_path / "data", "--config", str(config_file(tmp_path))).start()
    try:
        peer = Peer(node.port, login=ADMIN[0], passcode=ADMIN[1])
        for name in ("/queue/PAYROLL.eu", "/queue/shop"):
            for i in range(2):
                peer.conn.send(name, f"{name} {i}", headers={"persistent": "true"}, receipt=f"{name}{i}")
                peer.receipt(f"{name}{i}")
        peer.close()
        yield node
    finally:
        node.proc.stop()


def test_no_or_wrong_credentials_get_a_basic_challenge(broker: AdminBroker) -> None:
    for user in (None, ("ops", "wrong"), ("nobody", "x")):
        status, data, headers = broker.call("GET", "/api/destinations", user=user)
        assert status == 401 and headers["www-authenticate"].startswith("Basic realm=")
        assert "destinations" not in data
    status, _, headers = broker.call("GET", "/", user=None)  # the console asks the browser to log in
    assert status == 401 and "www-authenticate" in headers
    status, _, _ = broker.call("GET", "/api/destinations", headers={"Authorization": "Bearer abc"})
    assert status == 401


def test_a_user_without_the_admin_right_sees_and_touches_only_its_destinations(broker: AdminBroker) -> None:
    names = {r["name"] for r in broker.call("GET", "/api/destinations", user=APP)[1]["destinations"]}
    assert "/queue/shop" in names and "/queue/PAYROLL.eu" not in names
    for method, path, body in (("GET", "/api/queues/PAYROLL.eu/messages", None),
                               ("POST", "/api/queues/PAYROLL.eu/purge", None),
                               ("POST", "/api/queues/shop/move", {"to": "/queue/PAYROLL.in"}),
                               ("DELETE", "/api/queues/PAYROLL.eu", None)):
        status, data, _ = broker.call(method, path, body, user=APP)
        assert status == 403 and "admin access denied" in data["error"], (method, path, data)
    assert depth(broker, "/queue/PAYROLL.eu", user=ADMIN) == 2
    assert depth(broker, "/queue/shop", user=ADMIN) == 2
    status, page, _ = broker.call("GET", "/api/queues/PAYROLL.eu/messages", user=ADMIN)
    assert status == 200 and len(page["messages"]) == 2


def test_the_cli_logs_in_and_reports_a_refusal_in_one_line(broker: AdminBroker) -> None:
    env = {"BATONMQ_ADMIN_PASSWORD": APP[1]}
    refused = admin_cli("purge", "/queue/PAYROLL.eu", "--url", broker.url, "--user", "app", env=env)
    assert refused.returncode == 3 and refused.stdout == ""
    assert refused.stderr.strip() == "batonmq admin purge: 403 admin access denied on /queue/PAYROLL.eu"
    wrong = admin_cli("list", "--url", broker.url, "--user", "ops", env={"BATONMQ_ADMIN_PASSWORD": "bad"})
    assert wrong.returncode == 3 and "401 authentication failed" in wrong.stderr
    allowed = admin_cli("list", "--url", broker.url, "--user", "ops", "--json",
                        env={"BATONMQ_ADMIN_PASSWORD": ADMIN[1]})
    assert allowed.returncode == 0, allowed.stderr
    names = {r["name"] for r in json.loads(allowed.stdout)["destinations"]}
    assert names >= {"/queue/PAYROLL.eu", "/queue/shop"}
    assert HOST in broker.url
