"""CONNECT authentication over real sockets: what the authenticator learns of a TCP client, and a
refusal as the client sees it (ERROR, then the socket closes, never CONNECTED)."""

from __future__ import annotations

import threading

import pytest
import stomp

from broker.engine.auth import Credentials, Principal
from tests.helpers.rawstomp import RawStomp
from tests.helpers.server import HOST, running_broker
from tests.integration.test_stomp_transport import WAIT, error_of


class OnlyAlice:
    """Lets in alice/secret; remembers what every CONNECT offered (called on the broker's loop)."""

    def __init__(self) -> None:
        self.seen: list[Credentials] = []
        self.lock = threading.Lock()

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        with self.lock:
            self.seen.append(credentials)
        if (credentials.login, credentials.passcode) == ("alice", "secret"):
            return Principal("alice", frozenset({"users"}))
        return None




@pytest.mark.parametrize("scheme", ["tcp", "stomp"])
def test_stomp_py_login_reaches_the_authenticator_with_the_peer_and_scheme(scheme: str) -> None:
    auth = OnlyAlice()
    with running_broker(authenticator=auth, scheme=scheme) as broker:
        conn = stomp.Connection12([(HOST, broker.port)])
        conn.connect("alice", "secret", wait=True)
        try:
            local_port = conn.transport.socket.getsockname()[1]
            assert auth.seen == [Credentials("alice", "secret", f"{HOST}:{local_port}", scheme, None)]

            async def principals() -> list[Principal | None]:
                assert broker.broker is not None
                return [s.principal for s in broker.broker.sessions]

            assert broker.call(principals()) == [Principal("alice", frozenset({"users"}))]
        finally:
            conn.disconnect()


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_refused_login_gets_error_then_close_and_never_connected(version: str) -> None:
    with running_broker(authenticator=OnlyAlice()) as broker, RawStomp(HOST, broker.port) as raw:
        headers = {"login": "alice", "passcode": "guess"}
        if version != "1.0":
            headers["accept-version"] = version
        raw.send_frame("CONNECT", headers)
        reply = raw.read_frame(WAIT)
        assert error_of(reply) == "authentication failed" and "guess" not in reply
        assert raw.read_until_closed(WAIT) == (b"", True)  # closed, and nothing after the ERROR
        assert broker.stats()["connections"] == 0
