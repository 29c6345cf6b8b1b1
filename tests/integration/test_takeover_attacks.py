"""The three attacks of issue 13 on what clients name, as regression tests with stomp.py.

1. Taking over another user's durable subscription (connecting with its client-id, or with a
   client-id and subscription name that make the same key) to read its messages.
2. Removing it (UNSUBSCRIBE naming it) to destroy messages that already got a RECEIPT.
3. Sending ahead with the `batonmq.producer-id` values a victim will use next (consumers see
   them), so that the victim's receipted sends are dropped as duplicates.

Ownership is kept in the store: the refusals hold after a restart too.
"""

from __future__ import annotations

from pathlib import Path

from config.model import StoreSettings
from stores.journal.store import JournalStore
from tests.helpers.secure import Peer, peers, secure_broker, secure_config, user
from tests.helpers.server import HOST

PID = "batonmq.producer-id"
USERS = [user("alice", "a-pass", "apps"), user("mallory", "m-pass", "apps")]
OPEN = [{"topic": ">", "read": "apps", "write": "apps", "admin": "apps"},
        {"queue": ">", "read": "apps", "write": "apps", "admin": "apps"}]
DURABLE = {"activemq.subscriptionName": "orders"}


def journal(path: Path) -> JournalStore:
    return JournalStore(path / "journal", StoreSettings())


def connect(broker, made: list[Peer], name: str, password: str, **headers: str) -> Peer:
    peer = Peer(broker.port, name, password, **headers)
    made.append(peer)
    return peer


def alice_leaves_a_receipted_message_in_her_durable_subscription(broker, made: list[Peer]) -> None:
    alice = connect(broker, made, "alice", "a-pass", **{"client-id": "acme:billing"})
    assert alice.connected()
    assert alice.subscribe("/topic/orders", **DURABLE) == "sub"
    alice.close()
    producer = connect(broker, made, "alice", "a-pass")
    assert producer.connected()
    assert producer.send("/topic/orders", "order-1", receipt="o1", persistent="true") == "o1"


def test_another_user_cannot_take_over_or_remove_a_durable_subscription(tmp_path: Path) -> None:
    config = secure_config(USERS, OPEN)
    with secure_broker(config, journal(tmp_path)) as broker, peers() as made:
        alice_leaves_a_receipted_message_in_her_durable_subscription(broker, made)
        # Attack 1: mallory connects with alice's client-id to attach her subscription.
        thief = connect(broker, made, "mallory", "m-pass", **{"client-id": "acme:billing"})
        assert not thief.connected()
        assert thief.error().headers["message"] == "client-id not available"
        # ... or with a client-id and name that durable_key() joins into the same key.
        squat = connect(broker, made, "mallory", "m-pass", **{"client-id": "acme"})
        assert squat.connected()
        refused = squat.subscribe("/topic/orders", **{"activemq.subscriptionName": "billing:orders"})
        assert refused.headers["message"] == "durable subscription name clash"
        # Attack 2: remove it while alice is away (UNSUBSCRIBE naming it), from the same seat.
        squat.conn.unsubscribe("x", headers={"activemq.subscriptionName": "billing:orders", "receipt": "u"})
        assert squat.error().headers["message"] == "durable subscription name clash"
        # (Under her own client-id mallory cannot even connect, as above, so cannot UNSUBSCRIBE.)
    # After a restart (owners come back from the store) mallory is still refused, and alice
    # still finds her receipted message.
    with secure_broker(config, journal(tmp_path)) as broker, peers() as made:
        thief = connect(broker, made, "mallory", "m-pass", **{"client-id": "acme:billing"})
        assert not thief.connected()
        alice = connect(broker, made, "alice", "a-pass", **{"client-id": "acme:billing"})
        assert alice.connected()
        assert alice.subscribe("/topic/orders", **DURABLE) == "sub"
        assert alice.get().body == "order-1"


def test_an_unowned_subscription_is_claimed_by_the_first_user_to_attach_it(tmp_path: Path) -> None:
    # Made before authentication was switched on: it has no owner yet.
    with secure_broker(secure_config(), journal(tmp_path)) as broker, peers() as made:
        early = connect(broker, made, None, None, **{"client-id": "legacy"})  # type: ignore[arg-type]
        assert early.connected()
        assert early.subscribe("/topic/orders", **DURABLE) == "sub"
    with secure_broker(secure_config(USERS, OPEN), journal(tmp_path)) as broker, peers() as made:
        alice = connect(broker, made, "alice", "a-pass", **{"client-id": "legacy"})
        assert alice.connected() and alice.subscribe("/topic/orders", **DURABLE) == "sub"
        alice.close()
        thief = connect(broker, made, "mallory", "m-pass", **{"client-id": "legacy"})
        assert not thief.connected()


def test_producer_ids_sent_ahead_by_another_user_do_not_suppress_the_victims_sends() -> None:
    with secure_broker(secure_config(USERS, OPEN)) as broker, peers() as made:
        consumer = connect(broker, made, "alice", "a-pass")
        assert consumer.connected() and consumer.subscribe("/queue/ledger") == "sub"
        # Attack 3: mallory saw alice's ids (uuid:1) on a message and sends uuid:2..4 first.
        mallory = connect(broker, made, "mallory", "m-pass")
        assert mallory.connected()
        for seq in (2, 3, 4):
            assert mallory.send("/queue/ledger", f"decoy-{seq}", receipt=f"m{seq}", **{PID: f"u1:{seq}"})
        victim = connect(broker, made, "alice", "a-pass")
        assert victim.connected()
        for seq in (2, 3, 4):
            assert victim.send("/queue/ledger", f"real-{seq}", receipt=f"a{seq}", **{PID: f"u1:{seq}"})
        got = sorted(consumer.get().body for _ in range(6))
        assert got == sorted([f"decoy-{s}" for s in (2, 3, 4)] + [f"real-{s}" for s in (2, 3, 4)])
        # A failover resend comes from a new connection of the same user: still a duplicate.
        resender = connect(broker, made, "alice", "a-pass")
        assert resender.connected()
        assert resender.send("/queue/ledger", "real-3 again", receipt="again", **{PID: "u1:3"}) == "again"
        assert consumer.nothing()


def test_without_authentication_producer_ids_are_scoped_by_client_address() -> None:
    with secure_broker(secure_config()) as broker, peers() as made:
        consumer = connect(broker, made, None, None)  # type: ignore[arg-type]
        assert consumer.connected() and consumer.subscribe("/queue/ledger") == "sub"
        attacker = Peer(broker.port, bind="127.0.0.2")  # another host, as far as TCP can tell
        made.append(attacker)
        assert attacker.connected()
        assert attacker.send("/queue/ledger", "decoy", receipt="d", **{PID: "u2:1"}) == "d"
        victim = Peer(broker.port, bind=HOST)
        made.append(victim)
        assert victim.connected()
        assert victim.send("/queue/ledger", "real", receipt="v", **{PID: "u2:1"}) == "v"
        assert sorted(consumer.get().body for _ in range(2)) == ["decoy", "real"]
        again = Peer(broker.port, bind=HOST)  # the victim's failover resend: same address
        made.append(again)
        assert again.connected()
        assert again.send("/queue/ledger", "real again", receipt="a", **{PID: "u2:1"}) == "a"
        assert consumer.nothing()
