"""The failover client over ssl:// through kill -9 of the master (design.md section 7's checks).

Three broker processes on 127.0.0.2-4 share one data directory; each has a tcp:// connector (the
cluster helpers watch it) and an ssl:// one with a certificate made for this run that names all
three addresses. Clients use only the ssl:// URIs, trusting only this run's CA, with host names checked.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from broker.ha.roles import ExitCode
from tests.ha.test_failover_client import FAST, cli_across_a_kill, kill_master
from tests.helpers.cluster import HOSTS, BrokerProc, free_port, stop_all, wait_for_single_master
from tests.helpers.tls import make_pki
from transports.client import ConnectionEvent, ConnectionState, connect
from transports.stomp.commands import PRODUCER_ID_HEADER
from transports.tls import client_context

pytestmark = pytest.mark.ha


@pytest.fixture
def tls_cluster(tmp_path: Path):
    pki = make_pki(tmp_path / "pki")
    tcp_port = free_port()
    ssl_port = next(port for port in iter(free_port, None) if port != tcp_port)
    flags = ("--tls-cert", str(pki.cert), "--tls-key", str(pki.key))
    brokers = [BrokerProc(f"b{i + 1}", host, tcp_port, tmp_path / "shared",
                          extra=("--connector", f"ssl://{host}:{ssl_port}", *flags))
               for i, host in enumerate(HOSTS)]
    for broker in brokers:
        broker.start()
    url = "failover:(" + ",".join(f"ssl://{host}:{ssl_port}" for host in HOSTS) + f")?{FAST}"
    try:
        yield brokers, url, pki
    finally:
        stop_all(brokers)


async def test_failover_client_over_ssl_survives_two_kills(tls_cluster) -> None:
    brokers, url, pki = tls_cluster
    await asyncio.to_thread(wait_for_single_master, brokers, 20)
    dest, total = "/queue/tls-orders", 300
    receipted: list[str] = []
    seen: list[tuple[str, bool, bytes]] = []
    events: list[ConnectionEvent] = []

    async def produce() -> None:
        async with connect(url, tls=client_context(pki.ca)) as client:
            client.on_event(events.append)
            for seq in range(total):
                receipted.append(await client.send(dest, f"tls-{seq}", persistent=True, receipt=True))
                await asyncio.sleep(0.003)
            await client.disconnect(timeout=30)
            assert client.stats.reconnects == 2 and client.stats.receipted == total

    async def consume() -> None:
        async with connect(url, tls=client_context(pki.ca)) as client:
            sub = await client.subscribe(dest, ack="client-individual")
            while len({pid for pid, _, _ in seen}) < total:
                message = await sub.get(15)
                if message is None:
                    break
                seen.append((message.headers[PRODUCER_ID_HEADER], message.redelivered, message.body))
                await message.ack()

    async def kill_twice() -> None:
        for fraction in (1 / 3, 2 / 3):
            while len(receipted) < total * fraction:
                await asyncio.sleep(0.01)
            await kill_master(brokers)

    await asyncio.wait_for(asyncio.gather(produce(), consume(), kill_twice()), 120)
    copies = Counter(pid for pid, _, _ in seen)
    assert set(receipted) == set(copies), "a receipted message was lost or an unsent one appeared"
    assert {body for _, _, body in seen} == {f"tls-{seq}".encode() for seq in range(total)}
    firsts: set[str] = set()
    for pid, redelivered, _ in seen:
        assert pid not in firsts or redelivered, f"unflagged duplicate {pid}"
        firsts.add(pid)
    # The listener was added once connected: it heard the two reconnects.
    connected = [e.describe() for e in events if e.state is ConnectionState.CONNECTED]
    assert len(connected) == 2 and all(line.startswith("connected to ssl://127.0.0.") for line in connected)


async def test_cli_produce_and_consume_over_ssl_across_a_kill(tls_cluster) -> None:
    brokers, url, pki = tls_cluster
    await asyncio.to_thread(wait_for_single_master, brokers, 20)
    count = 400
    produced, produce_err, consumed, consume_err = await cli_across_a_kill(
        brokers, url, "/queue/tls-cli", count, 100, "--tls-ca", str(pki.ca))
    assert produced["ok"] and produced["receipted"] == count and produced["reconnects"] == 1, produce_err
    assert "produce: reconnected: connected to ssl://127.0.0." in produce_err
    assert consumed["ok"] and consumed["unique"] == count, consume_err
    assert consumed["duplicates_unflagged"] == 0


def test_a_certificate_gone_by_takeover_fails_it_before_any_connector_listens(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    cert = tmp_path / "renewed.pem"
    cert.write_bytes(pki.cert.read_bytes())
    tcp_port, ssl_port = free_port(HOSTS[:2]), free_port(HOSTS[1:2])
    master = BrokerProc("a", HOSTS[0], tcp_port, tmp_path / "shared").start()
    slave = BrokerProc("b", HOSTS[1], tcp_port, tmp_path / "shared", extra=(
        "--connector", f"ssl://{HOSTS[1]}:{ssl_port}", "--tls-cert", str(cert), "--tls-key", str(pki.key)))
    try:
        assert master.wait_role("master", 20), master.log_text()
        slave.start()  # the files are checked at startup: all is well
        assert slave.wait_role("slave", 20), slave.log_text()
        cert.unlink()
        master.signal(signal.SIGKILL)
        # As any connector that cannot listen at takeover: one line, a graceful stop, the lock released.
        assert slave.wait_exit(20) == ExitCode.BIND, slave.log_text()
        refusal = f"broker b: cannot listen on ssl://{HOSTS[1]}:{ssl_port}: tls.cert: no such file"
        assert refusal in slave.log_text()
        assert "Traceback" not in slave.log_text()
        assert "connector listening" not in slave.log_text()  # not even tcp:// was served
    finally:
        stop_all([master, slave])
