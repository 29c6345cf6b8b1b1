"""Per-destination rights with ActiveMQ's semantics, as stomp.py clients of a real broker see them.

Users: alice (admins), bob (users), carol (guests). The entries are those of ActiveMQ's own
authorization example (docs/security.md), plus a `*` entry, a topic entry, the DLQ and a
default entry where a test needs one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.secure import Peer, peers, secure_broker, secure_config, user

USERS = [user("alice", "a-pass", "admins"), user("bob", "b-pass", "users"), user("carol", "c-pass", "guests")]
PASSWORDS = {"alice": "a-pass", "bob": "b-pass", "carol": "c-pass"}
ENTRIES: list[dict[str, Any]] = [
    {"queue": ">", "read": "admins", "write": "admins", "admin": "admins"},
    {"queue": "USERS.>", "read": "users", "write": "users", "admin": "users"},
    {"queue": "GUEST.>", "read": "guests", "write": "guests,users", "admin": "guests,users"},
    {"queue": "ORDERS.*.IN", "read": "users", "write": "guests"},
    {"topic": ">", "read": "admins", "write": "admins", "admin": "admins"},
    {"topic": "NEWS", "read": "*", "write": "users", "admin": "users"},
]


@pytest.fixture
def broker():
    with secure_broker(secure_config(USERS, ENTRIES)) as b:
        yield b


def login(broker, made: list[Peer], name: str, **headers: str) -> Peer:
    peer = Peer(broker.port, name, PASSWORDS[name], **headers)
    made.append(peer)
    assert peer.connected()
    return peer


def denied(answer: Any, right: str, destination: str) -> None:
    assert not isinstance(answer, str), f"expected a refusal, got RECEIPT {answer}"
    assert answer.headers["message"] == f"{right} access denied on {destination}"
    assert answer.headers["destination"] == destination


def test_write_needs_the_write_right_and_a_refused_send_stores_nothing(broker) -> None:
    with peers() as made:
        bob, alice = login(broker, made, "bob"), login(broker, made, "alice")
        assert alice.send("/queue/PAYROLL", "seed", receipt="seed") == "seed"  # exists now
        forged = bob.send("/queue/PAYROLL", "forged", receipt="r1", persistent="true")
        denied(forged, "write", "/queue/PAYROLL")
        # The refusal ended nothing: bob's connection goes on with what he may do.
        assert bob.send("/queue/USERS.mail", "hello", receipt="r2") == "r2"
        assert broker.stats()["destinations"]["/queue/PAYROLL"]["depth"] == 1
        assert alice.subscribe("/queue/PAYROLL") == "sub"
        assert alice.get().body == "seed" and alice.nothing()


def test_a_name_without_a_prefix_is_authorized_as_the_queue_of_that_name(broker) -> None:
    # ActiveMQ makes `USERS.mail` the queue USERS.mail: the queue entries decide, for that queue.
    with peers() as made:
        bob, carol = login(broker, made, "bob"), login(broker, made, "carol")
        assert bob.send("USERS.mail", "hello", receipt="r1") == "r1"
        assert broker.stats()["destinations"]["/queue/USERS.mail"]["depth"] == 1
        denied(carol.send("USERS.mail", "spam", receipt="r2"), "write", "/queue/USERS.mail")
        denied(bob.send("PAYROLL", "forged", receipt="r3"), "write", "/queue/PAYROLL")
        assert bob.subscribe("USERS.mail") == "sub" and bob.get().body == "hello"


def test_read_needs_the_read_right(broker) -> None:
    with peers() as made:
        bob = login(broker, made, "bob")
        assert bob.send("/queue/USERS.jobs", "job", receipt="w") == "w"
        carol = login(broker, made, "carol")
        denied(carol.subscribe("/queue/USERS.jobs"), "read", "/queue/USERS.jobs")
        assert carol.nothing()
        assert bob.subscribe("/queue/USERS.jobs") == "sub" and bob.get().body == "job"


def test_creating_a_destination_needs_admin_but_using_an_existing_one_does_not(broker) -> None:
    with peers() as made:
        carol, bob = login(broker, made, "carol"), login(broker, made, "bob")
        # ORDERS.*.IN gives guests write but nobody admin: carol cannot create the queue...
        denied(carol.send("/queue/ORDERS.eu.IN", "o1", receipt="c1"), "admin", "/queue/ORDERS.eu.IN")
        assert "/queue/ORDERS.eu.IN" not in broker.stats()["destinations"]
        # ...until someone who may (alice, admin on every queue through '>') has created it.
        alice = login(broker, made, "alice")
        assert alice.send("/queue/ORDERS.eu.IN", "o0", receipt="a1") == "a1"
        assert carol.send("/queue/ORDERS.eu.IN", "o1", receipt="c2") == "c2"
        assert bob.subscribe("/queue/ORDERS.eu.IN") == "sub"  # users read it; it exists
        assert sorted([bob.get().body, bob.get().body]) == ["o0", "o1"]


def test_wildcards_star_is_one_element_and_greater_than_is_the_rest(broker) -> None:
    with peers() as made:
        alice, carol = login(broker, made, "alice"), login(broker, made, "carol")
        for name in ("/queue/ORDERS.eu.IN", "/queue/ORDERS.eu.x.IN", "/queue/ORDERS.IN"):
            alice.send(name, "seed", receipt=name)
        assert carol.send("/queue/ORDERS.eu.IN", "one element", receipt="ok") == "ok"
        for name in ("/queue/ORDERS.eu.x.IN", "/queue/ORDERS.IN"):  # '*' is exactly one element
            denied(carol.send(name, "no", receipt=name), "write", name)
        # '>' covers the name itself and everything below it.
        for name in ("/queue/GUEST", "/queue/GUEST.a", "/queue/GUEST.a.b.c"):
            assert carol.send(name, "guest", receipt=name) == name


def test_rights_of_all_matching_entries_add_up(broker) -> None:
    with peers() as made:
        bob = login(broker, made, "bob")
        # GUEST.> grants users write and admin; '>' grants admins: bob gets GUEST.>'s rights,
        # alice keeps hers from '>' on the same name.
        assert bob.send("/queue/GUEST.board", "post", receipt="b") == "b"
        alice = login(broker, made, "alice")
        assert alice.subscribe("/queue/GUEST.board") == "sub" and alice.get().body == "post"
        denied(bob.subscribe("/queue/GUEST.board", sub_id="x", receipt="x"), "read", "/queue/GUEST.board")


def test_queue_and_topic_entries_are_separate_and_star_group_is_everyone(broker) -> None:
    with peers() as made:
        bob, carol = login(broker, made, "bob"), login(broker, made, "carol")
        denied(carol.subscribe("/topic/NEWS", sub_id="early", receipt="e"), "admin", "/topic/NEWS")
        assert bob.send("/topic/NEWS", "first", receipt="f") == "f"  # bob has admin: creates it
        assert carol.subscribe("/topic/NEWS") == "sub"  # read="*": every user
        assert bob.send("/topic/NEWS", "extra", receipt="n") == "n"
        assert carol.get().body == "extra"
        denied(carol.send("/topic/NEWS", "rumour", receipt="c"), "write", "/topic/NEWS")
        # USERS.> names queues only.
        denied(bob.send("/topic/USERS.x", "t", receipt="t"), "write", "/topic/USERS.x")


def test_durable_subscription_needs_read_on_its_topic(broker) -> None:
    with peers() as made:
        alice = login(broker, made, "alice", **{"client-id": "alice-app"})
        assert alice.subscribe("/topic/AUDIT", **{"activemq.subscriptionName": "log"}) == "sub"
        bob = login(broker, made, "bob", **{"client-id": "bob-app"})
        denied(bob.subscribe("/topic/AUDIT", **{"activemq.subscriptionName": "log"}), "read", "/topic/AUDIT")
        assert "durable:bob-app:log" not in broker.stats()["destinations"]


def test_a_destination_no_entry_matches_is_refused_to_everyone() -> None:
    entries = [{"queue": "APP.>", "read": "admins", "write": "admins", "admin": "admins"}]
    with secure_broker(secure_config(USERS, entries)) as broker, peers() as made:
        alice = login(broker, made, "alice")
        assert alice.send("/queue/APP.x", "fine", receipt="ok") == "ok"
        denied(alice.send("/queue/OTHER", "nowhere", receipt="no"), "write", "/queue/OTHER")
        denied(alice.subscribe("/topic/APP.x"), "read", "/topic/APP.x")  # a topic: no entry


def test_the_default_entry_adds_rights_everywhere() -> None:
    entries = [{"queue": "APP.>", "read": "users", "write": "users", "admin": "users"}]
    config = secure_config(USERS, entries, authorization={"default": {"read": "admins", "write": "admins",
                                                                       "admin": "admins"}})
    with secure_broker(config) as broker, peers() as made:
        alice, bob = login(broker, made, "alice"), login(broker, made, "bob")
        assert alice.send("/queue/APP.x", "by default", receipt="a") == "a"
        assert alice.send("/topic/anything", "too", receipt="t") == "t"
        denied(bob.send("/queue/ELSE", "no", receipt="b"), "write", "/queue/ELSE")
        assert bob.subscribe("/queue/APP.x") == "sub" and bob.get().body == "by default"


def test_the_dead_letter_queue_is_read_only_with_read_on_it() -> None:
    entries = [
        {"queue": "WORK", "read": "users,admins", "write": "users", "admin": "users"},
        {"queue": "ActiveMQ.DLQ", "read": "admins"},
    ]
    config = secure_config(USERS, entries, limits={"max_redeliveries": 0})
    with secure_broker(config) as broker, peers() as made:
        bob = login(broker, made, "bob")
        assert bob.send("/queue/WORK", "poison", receipt="w") == "w"
        bob.conn.subscribe("/queue/WORK", id="w", ack="client-individual")
        frame = bob.get()
        bob.conn.nack(frame.headers["ack"])  # past max_redeliveries: to ActiveMQ.DLQ, unchecked
        bob.conn.unsubscribe("w")
        denied(bob.subscribe("/queue/ActiveMQ.DLQ", sub_id="d", receipt="d"), "read", "/queue/ActiveMQ.DLQ")
        alice = login(broker, made, "alice")
        assert alice.subscribe("/queue/ActiveMQ.DLQ") == "sub"
        dead = alice.get()
        assert dead.body == "poison" and dead.headers["original-destination"] == "/queue/WORK"


def test_on_denied_close_ends_the_connection() -> None:
    config = secure_config(USERS, ENTRIES, authorization={"on_denied": "close"})
    with secure_broker(config) as broker, peers() as made:
        carol = login(broker, made, "carol")
        denied(carol.send("/queue/PAYROLL", "x", receipt="r"), "write", "/queue/PAYROLL")
        assert carol.listener.disconnected.wait(5)
