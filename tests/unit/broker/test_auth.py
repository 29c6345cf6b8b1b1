"""CONNECT asks the broker's authenticator: what it is told, what a refusal looks like, the default."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest

from broker.engine.auth import ANONYMOUS, AllowAll, Credentials, Principal
from tests.unit.broker.memconn import Client, MemConn, make_broker

SECRET_LOGIN, SECRET_PASSCODE = "mallory", "hunter2"


class Recording:
    """Answers with `answer` and remembers every question."""

    def __init__(self, answer: Principal | None = ANONYMOUS) -> None:
        self.answer = answer
        self.seen: list[Credentials] = []

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        self.seen.append(credentials)
        return self.answer


class Hashed:
    """A real check of the kind the security issue brings: PBKDF2 on a worker thread, not the loop."""

    def __init__(self, users: dict[str, tuple[str, frozenset[str]]]) -> None:
        self.salt = b"unit-salt"
        self.users = {name: (self._hash(password), groups) for name, (password, groups) in users.items()}

    def _hash(self, password: str) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt, 1000)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        entry = self.users.get(credentials.login or "")
        digest = await asyncio.to_thread(self._hash, credentials.passcode or "")
        if entry is None or not hmac.compare_digest(digest, entry[0]):
            return None
        return Principal(credentials.login or "", entry[1])


class Gated:
    """Holds every answer until `release` is set: a slow check, as a remote directory would be."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.asked = asyncio.Event()

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        self.asked.set()
        await self.release.wait()
        return Principal(credentials.login or "anonymous")


async def test_authenticator_is_told_what_connect_carried_and_how_the_client_came() -> None:
    auth = Recording(Principal("alice", frozenset({"admins", "users"})))
    broker = make_broker(auth)
    certificate = {"subject": ((("commonName", "alice"),),)}
    client = Client(broker, conn=MemConn("10.0.0.9:40000", "ssl", certificate))
    frame = await client.connect("1.2", login="alice", passcode="s3cret", client_id="c1")
    assert frame.headers["version"] == "1.2"
    assert auth.seen == [Credentials("alice", "s3cret", "10.0.0.9:40000", "ssl", certificate)]
    assert client.session.principal == Principal("alice", frozenset({"admins", "users"}))
    assert "s3cret" not in repr(auth.seen[0])  # a passcode never reaches a log line by repr


async def test_missing_login_and_passcode_reach_the_authenticator_as_none() -> None:
    auth = Recording()
    client = Client(make_broker(auth))
    await client.frame("CONNECT")
    assert auth.seen == [Credentials(None, None, "mem", "mem", None)]
    assert client.conn.take("CONNECTED")


REFUSED_CONNECTS = [
    pytest.param("CONNECT", {}, id="STOMP 1.0 CONNECT"),
    pytest.param("CONNECT", {"accept-version": "1.1", "heart-beat": "100,100"}, id="STOMP 1.1 CONNECT"),
    pytest.param("CONNECT", {"accept-version": "1.2", "host": "x"}, id="STOMP 1.2 CONNECT"),
    pytest.param("STOMP", {"accept-version": "1.1,1.2", "host": "x"}, id="STOMP frame"),
]


@pytest.mark.parametrize(("command", "headers"), REFUSED_CONNECTS)
async def test_refusal_is_one_error_then_close_and_no_connected(
    command: str, headers: dict[str, str]
) -> None:
    auth = Recording(None)
    broker = make_broker(auth, heartbeat_send_ms=100, heartbeat_recv_ms=100)
    client = Client(broker)
    credentials = {"login": SECRET_LOGIN, "passcode": SECRET_PASSCODE, "client-id": "squatter"}
    await client.raw(command, {**headers, **credentials})
    (error,) = client.conn.sent  # nothing but the ERROR: no CONNECTED before or after it
    assert error.command == "ERROR" and error.headers["message"] == "authentication failed"
    assert client.conn.closed and client.conn.heartbeat is None
    shown = repr(error.headers) + error.body.decode()
    assert SECRET_LOGIN not in shown and SECRET_PASSCODE not in shown  # no hint for an attacker
    assert client.session.principal is None and not client.session.connected
    assert broker.client_ids == {} and client.session not in broker.sessions
    await client.frame("SEND", b"x", destination="/queue/a", receipt="r")
    assert client.conn.sent == [error]  # everything after the refusal is ignored
    assert broker.destinations.stats() == {}


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
async def test_default_accepts_everyone_as_anonymous(version: str) -> None:
    broker = make_broker()
    assert isinstance(broker.authenticator, AllowAll)
    for headers in ({}, {"login": "anyone", "passcode": "anything"}, {"login": "", "passcode": ""}):
        client = Client(broker)
        frame = await client.connect(version, **headers)
        assert frame.headers["version"] == version
        assert client.session.principal == ANONYMOUS == Principal("anonymous", frozenset({"anonymous"}), True)


async def test_a_real_password_check_accepts_the_right_passcode_only() -> None:
    broker = make_broker(Hashed({"alice": ("wonderland", frozenset({"users"}))}))
    good = Client(broker)
    await good.connect("1.2", login="alice", passcode="wonderland")
    assert good.session.principal == Principal("alice", frozenset({"users"}))
    for login, passcode in [("alice", "wrong"), ("bob", "wonderland"), ("", "")]:
        bad = Client(broker)
        await bad.frame("CONNECT", accept_version="1.2", login=login, passcode=passcode)
        assert bad.conn.errors() == ["authentication failed"] and bad.conn.closed
        assert bad.conn.take("CONNECTED") == []


async def test_other_connections_go_on_while_one_connect_waits_for_its_answer() -> None:
    auth = Gated()
    broker = make_broker(auth)
    waiting = Client(broker)
    pending = asyncio.ensure_future(waiting.frame("CONNECT", accept_version="1.2", login="slow"))
    await asyncio.wait_for(auth.asked.wait(), 5)
    assert waiting.conn.sent == []
    broker.authenticator = AllowAll()  # the others are let in at once
    other = Client(broker)
    await other.connect()
    await other.frame("SEND", b"meanwhile", destination="/queue/a", receipt="r")
    assert [f.command for f in other.conn.sent] == ["RECEIPT"]
    auth.release.set()
    await asyncio.wait_for(pending, 5)
    (connected,) = waiting.conn.take("CONNECTED")
    assert waiting.session.principal == Principal("slow")


async def test_connection_lost_while_authenticating_answers_nothing() -> None:
    auth = Gated()
    broker = make_broker(auth)
    client = Client(broker)
    pending = asyncio.ensure_future(client.frame("CONNECT", accept_version="1.2", client_id="c"))
    await asyncio.wait_for(auth.asked.wait(), 5)
    client.lose()
    auth.release.set()
    await asyncio.wait_for(pending, 5)
    assert client.conn.sent == [] and not client.session.connected
    assert broker.client_ids == {} and broker.sessions == set()


class Broken:
    async def authenticate(self, credentials: Credentials) -> Principal | None:
        raise RuntimeError("directory unreachable")


class Silent:
    async def authenticate(self, credentials: Credentials) -> Principal | None:
        await asyncio.Event().wait()
        raise AssertionError("never answers")


@pytest.mark.parametrize("auth", [Broken(), Silent()], ids=["raises", "never answers"])
async def test_a_failing_or_silent_authenticator_refuses(auth: object, monkeypatch, caplog) -> None:
    monkeypatch.setattr("broker.engine.auth.AUTH_TIMEOUT", 0.05)
    client = Client(make_broker(auth))  # type: ignore[arg-type]
    await asyncio.wait_for(client.frame("CONNECT", accept_version="1.2", login="u", passcode="p"), 5)
    assert client.conn.errors() == ["authentication failed"] and client.conn.closed
    assert client.conn.take("CONNECTED") == []
    assert "directory unreachable" not in repr(client.conn.sent)  # the cause goes to the log only
    assert any("authenticator" in r.getMessage() for r in caplog.records)
