"""Ownership in the engine, without sockets: what is stored with a durable subscription, the hot
standby's view of a claim, and the rule that without authentication nothing is owned."""

from __future__ import annotations

from broker.engine.auth import Credentials, Principal
from broker.engine.replay import Replay
from stores.base import DurableSubscription, PutSubscription, Recovered
from tests.unit.broker.memconn import Client, make_broker


class Named:
    """Lets anyone in under the login it offers."""

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        return Principal(credentials.login or "nobody", frozenset({"g"}))


async def subscribe(broker, login: str | None, client_id: str) -> Client:
    client = Client(broker)
    headers = {"login": login} if login else {}
    await client.connect("1.2", client_id=client_id, **headers)
    await client.frame("SUBSCRIBE", destination="/topic/t", id="1", **{"activemq.subscriptionName": "s"})
    return client


async def test_without_authentication_nothing_is_owned() -> None:
    broker = make_broker()
    first = await subscribe(broker, None, "c")
    assert broker.destinations.durables["durable:c:s"].owner is None
    first.lose()
    second = await subscribe(broker, None, "c")  # any anonymous client may attach it, as before
    assert second.conn.errors() == []


async def test_the_first_user_to_attach_an_unowned_subscription_owns_it() -> None:
    broker = make_broker(Named())
    Replay(broker).load(Recovered(subscriptions=[DurableSubscription("durable:c:s", "c", "s", "/topic/t")]))
    alice = await subscribe(broker, "alice", "c")
    assert alice.conn.errors() == [] and broker.destinations.durables["durable:c:s"].owner == "alice"
    alice.lose()
    mallory = Client(broker)
    await mallory.frame("CONNECT", accept_version="1.2", client_id="c", login="mallory")
    assert mallory.conn.errors() == ["client-id not available"] and mallory.conn.closed


def test_the_standby_follows_a_claim() -> None:
    broker = make_broker()
    replay = Replay(broker, track=True)
    replay.load(Recovered(subscriptions=[DurableSubscription("durable:c:s", "c", "s", "/topic/t")]))
    replay.apply(PutSubscription(DurableSubscription("durable:c:s", "c", "s", "/topic/t", owner="alice")))
    assert broker.destinations.durables["durable:c:s"].owner == "alice"
