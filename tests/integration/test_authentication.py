"""Logins against configured users, as stomp.py clients of a real broker see them: hashes, groups,
anonymous access, users.properties files, and the delay after failures."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tests.helpers.secure import CHEAP, Peer, peers, secure_broker, secure_config, user

USERS = [user("alice", "wonderland", "admins", "users"), user("bob", "builder", "users")]
ONLY_GUESTS = [{"queue": "PUBLIC.>", "read": "guests", "write": "guests", "admin": "guests"}]


def attempt(broker, made: list[Peer], login: str | None, passcode: str | None, **headers: str) -> Peer:
    peer = Peer(broker.port, login, passcode, **headers)
    made.append(peer)
    peer.connected()
    return peer


def refused(peer: Peer) -> bool:
    error = peer.error()
    # One fixed answer whatever was wrong: no hint of which part, nor whether the user exists.
    assert error.headers["message"] == "authentication failed"
    assert error.body == "the broker refused these credentials"
    return peer.listener.disconnected.wait(5) and not peer.conn.is_connected()


@pytest.mark.parametrize(("login", "passcode"), [("alice", "wrong"), ("mallory", "wonderland"),
                                                 ("alice", ""), (None, None), ("", "")])
def test_only_the_right_password_lets_a_user_in(login: str | None, passcode: str | None) -> None:
    with secure_broker(secure_config(USERS)) as broker, peers() as made:
        assert refused(attempt(broker, made, login, passcode))
        good = attempt(broker, made, "alice", "wonderland")
        assert good.conn.is_connected()

        async def principals() -> list[object]:
            return [s.principal for s in broker.broker.sessions if s.connected]

        (principal,) = broker.call(principals())
        assert principal.name == "alice" and principal.groups == {"admins", "users"}


def test_anonymous_access_maps_to_the_configured_user_and_group() -> None:
    anonymous = {"anonymous_access": True, "anonymous_user": "visitor", "anonymous_group": "guests"}
    config = secure_config(USERS, ONLY_GUESTS, authentication=anonymous)
    with secure_broker(config) as broker, peers() as made:
        guest = attempt(broker, made, None, None)
        assert guest.conn.is_connected()
        assert guest.send("/queue/PUBLIC.board", "hi", receipt="ok") == "ok"  # the guests group's right
        denied = guest.send("/queue/PRIVATE", "no", receipt="no")
        assert denied.headers["message"] == "write access denied on /queue/PRIVATE"
        assert refused(attempt(broker, made, "bob", "wrong"))  # credentials are still checked


def test_users_and_groups_properties_files_with_plain_and_hashed_passwords(tmp_path: Path, caplog) -> None:
    users = tmp_path / "users.properties"
    users.write_text(f"# JAAS PropertiesLoginModule\nadmin=admin\ncarol = {CHEAP.hash('c-pass')}\n")
    groups = tmp_path / "groups.properties"
    groups.write_text("admins=admin\nguests=carol,admin\n")
    files = {"users_file": str(users), "groups_file": str(groups)}
    with caplog.at_level(logging.WARNING, "batonmq.config"):
        config = secure_config(authentication=files)
        broker_cm = secure_broker(config, None)
        with broker_cm as broker, peers() as made:
            assert attempt(broker, made, "admin", "admin").conn.is_connected()
            assert attempt(broker, made, "carol", "c-pass").conn.is_connected()
            assert refused(attempt(broker, made, "carol", "admin"))

            async def groups_of() -> dict[str, frozenset[str]]:
                return {s.principal.name: s.principal.groups for s in broker.broker.sessions if s.connected}

            assert broker.call(groups_of()) == {"admin": {"admins", "guests"}, "carol": {"guests"}}
    (warning,) = [r.getMessage() for r in caplog.records if "plain-text" in r.getMessage()]
    assert "'admin'" in warning and f"{users}:2" in warning and "admin=" not in warning


def test_failed_logins_from_an_address_slow_its_next_attempts() -> None:
    config = secure_config(USERS, authentication={"failure_delay": 0.2, "max_failure_delay": 5})
    with secure_broker(config) as broker, peers() as made:
        start = time.monotonic()
        assert refused(attempt(broker, made, "alice", "guess-1"))
        first = time.monotonic() - start
        for n in (2, 3):
            assert refused(attempt(broker, made, "alice", f"guess-{n}"))
        start = time.monotonic()
        late = attempt(broker, made, "alice", "wonderland")  # right, but checked only after the wait
        assert late.conn.is_connected()
        waited = time.monotonic() - start
        assert waited >= 0.75 > first, (first, waited)  # 0.2 s doubled per failure: 0.8 s after three
        start = time.monotonic()
        assert attempt(broker, made, "bob", "builder").conn.is_connected()  # the success reset it
        assert time.monotonic() - start < 0.5
