"""One client connection's STOMP session: the frame handler a connector drives, over any transport.

Frames arrive in order from the connection's reader task (transports/connection.py); the session
sees its connection only as a `transports.base.FrameLink`. CONNECT asks the broker's authenticator
(broker/engine/auth.py) before anything else may happen. Each command takes effect at once (state
changes, store writes started), while its *completion* — dispatch of a sent message, the RECEIPT —
goes through an ordered queue (broker/engine/ordering.py) so that the client sees completions in the order it
sent the frames, without waiting for each fsync before reading the next frame.

Any client error ends the session: an ERROR frame (after the receipts already due) and close
(STOMP 1.2, "ERROR"). Only this connection is affected. Two kinds leave it open: a `Refused` frame
(authorization, unless `on_denied = "close"`) and a `Rejected` one (a subscription id in use).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.engine.auth import Credentials, Principal
from broker.engine.browse import QueueBrowser, is_browser
from broker.engine.dedup import producer_scope, scoped_id
from broker.engine.destinations import LOCAL_TEMP_PREFIXES, check_destination, durable_key, is_temp, is_topic
from broker.engine.errors import ClientError, Refused, Rejected
from broker.engine.flow import NoRoom, when_room
from broker.engine.groups import EXCLUSIVE
from broker.engine.guard import owner_of
from broker.engine.headers import negotiate, pending_limit, prefetch_size
from broker.engine.login import log_in
from broker.engine.message import from_send
from broker.engine.ordering import Completions
from broker.engine.queue import Queue
from broker.engine.selector import compile_selector
from broker.engine.subscription import ACK_MODES, Subscription
from broker.engine.tempdest import TempNames
from broker.engine.transaction import Transactions
from config.security import Right
from stores.base import StoreClosed
from transports.stomp.frame import Frame, ProtocolError
from transports.stomp.template import render

if TYPE_CHECKING:
    import asyncio

    from broker.engine.core import Apply, Broker
    from broker.engine.message import Message
    from broker.engine.slicing import Budget
    from transports.base import FrameLink

log = logging.getLogger(__name__)

SERVER = "BatonMQ/0.1"  # the CONNECTED frame's `server` header

MAX_IN_FLIGHT = 128  # frames whose completion (e.g. a store write) is pending, per connection
MAX_SUBSCRIPTIONS = 1000


class Session:
    def __init__(self, broker: Broker, conn: FrameLink, session_id: str) -> None:
        self.broker = broker
        self.conn = conn
        self.id = session_id
        self.version = "1.0"
        self.connected = False
        self.ending = False  # ERROR or DISCONNECT queued: later frames are ignored
        self.closed = False  # the connection is gone
        self.client_id: str | None = None
        self.principal: Principal | None = None  # who the authenticator said the client is
        self.owner: str | None = None  # whose durable subscriptions it may use (engine/guard.py)
        self.scope = ""  # what its producer ids are scoped to (engine/dedup.py)
        self.subscriptions: dict[str, Subscription] = {}
        self.browsers: dict[str, QueueBrowser] = {}  # browser:true subscriptions (engine/browse.py)
        # The connection's share of the memory budget: its frames are counted there by the
        # transport; its uncommitted transactions by us. A link without one gets its own.
        self._own_memory = conn.memory is None
        self.memory = conn.memory if conn.memory is not None else broker.memory.connection(conn.peer)
        self.transactions = Transactions(self.memory)
        self.completions = Completions(MAX_IN_FLIGHT, broker.limits.work_slice_ms / 1000)
        self._acks: dict[str, Subscription] = {}
        self._ack_seq = 0
        self.temps: TempNames | None = None  # its temporary destinations (tempdest.py), once it names one

    # -- FrameHandler -------------------------------------------------------------------------------

    async def handle(self, frame: Frame) -> None:
        if self.ending or self.closed:
            return
        if len(self.completions) >= self.completions.limit:  # only then: a coroutine per frame less
            await self.completions.room()
            if self.ending or self.closed:
                return
        connect = frame.command in ("CONNECT", "STOMP")
        try:
            if connect:
                await self._connect(frame)  # the only command that awaits: the authenticator
            else:
                if frame.command == "SEND" and self.broker.store_full(frame):
                    # Producer flow control at the disk limit: this connection's frames wait
                    # (its reader fills, then the socket stops being read) until there is room.
                    await self.broker.store_room()
                    if self.ending or self.closed:
                        return
                try:
                    self._handle(frame)
                except NoRoom as full:  # producer flow control: this frame, and so the link, waits
                    await when_room(lambda: self._handle(frame), full, full.timeout,
                                    lambda: self.ending or self.closed)
        except Refused as error:
            self.refuse(error, frame.get("receipt"), connect)
        except Rejected as error:
            self.reject(error, frame.get("receipt"))
        except ClientError as error:
            self.fail(error, frame.get("receipt"))
        except ProtocolError as error:
            self.fail(ClientError(str(error)), frame.get("receipt"))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._release()
        # Pending completions still run: a message already written must become deliverable.

    def _release(self) -> None:
        """Give back what the session holds: transactions aborted (STOMP 1.2: a transaction ends with
        its connection), unacked messages returned, client-id freed. Idempotent."""
        self.transactions.abort_all()
        budget = self.broker.slicer.budget()  # one slice for all of them, as in writing_resumed
        for subscription in list(self.subscriptions.values()):
            self._detach(subscription, budget)
        self.subscriptions.clear()
        for browser in self.browsers.values():
            browser.cancel()
        self.browsers.clear()
        if self.temps is not None:  # after the detaching: it must not find them gone
            self.broker.temps.release(self.temps)
        if self._own_memory:
            self.memory.close()
        self.broker.session_closed(self)

    async def finish(self) -> None:
        await self.completions.idle()

    def writing_resumed(self) -> None:
        # One slice for all: with a thousand subscriptions, a slice each would be a long turn.
        budget = self.broker.slicer.budget()
        for subscription in list(self.subscriptions.values()):
            subscription.queue.dispatch_within(budget)
        for browser in list(self.browsers.values()):
            browser.pump()

    # -- what subscriptions need (subscription.Owner) -----------------------------------------------

    @property
    def writable(self) -> bool:
        return not self.closed and self.conn.writable

    def send(self, frame: Frame) -> None:
        if self.temps is not None and frame.command == "MESSAGE" and self.temps.local:
            frame = Frame("MESSAGE", self.temps.localize(frame.headers), frame.body)
        self.conn.send(frame)

    def send_shared(self, message: Message, headers: dict[str, str]) -> bool:
        shared = message.shared
        if shared is None or (self.temps is not None and self.temps.local):  # localize() may rename
            return False
        template = shared.template(message, self.version)
        if template is None:
            return False
        try:
            data = render(template, headers)
        except ValueError:  # a header this version cannot carry: the Frame path flattens it
            return False
        self.conn.send_encoded(data)
        return True

    def next_ack_id(self, subscription: Subscription) -> str:
        self._ack_seq += 1
        ack_id = str(self._ack_seq)
        self._acks[ack_id] = subscription
        return ack_id

    def forget_ack_id(self, ack_id: str) -> None:
        self._acks.pop(ack_id, None)

    # -- completion and failure ---------------------------------------------------------------------

    def _complete(
        self,
        frame: Frame,
        write: asyncio.Future[None] | None = None,
        apply: Apply | None = None,
        undo: Callable[[], None] | None = None,
    ) -> None:
        receipt = frame.get("receipt")
        if write is None and apply is None and receipt is None:
            return

        def complete(error: BaseException | None) -> None:
            if error is not None:
                if undo is not None:
                    undo()
                self._store_failed(error, receipt)
                return
            delivered = apply() if apply is not None else None
            if delivered is not None:  # a topic fan-out goes on in later slices: the RECEIPT waits
                self.completions.add_next(delivered, lambda _: self._receipt(receipt))
            elif receipt is not None:
                self._receipt(receipt)

        self.completions.add(write, complete)

    def _receipt(self, receipt: str | None) -> None:
        if receipt is not None and self.broker.may_answer():
            self.send(Frame("RECEIPT", {"receipt-id": receipt}))

    def _store_failed(self, error: BaseException, receipt: str | None) -> None:
        if isinstance(error, StoreClosed):
            self.broker.fence_lost()
        log.warning("session %s: store write failed: %s", self.id, error)
        self.fail(ClientError("message not persisted", f"the store refused the write: {error}"), receipt)

    def fail(self, error: ClientError, receipt: str | None = None) -> None:
        """Queue ERROR + close behind the completions already due; ignore every later frame."""
        if self.ending:
            return
        self.ending = True
        frame = self._error_frame(error, receipt)
        self.completions.add(None, lambda _: self.conn.close(frame))

    def refuse(self, error: Refused, receipt: str | None, at_connect: bool = False) -> None:
        """Nothing done, ERROR in frame order; the connection goes on unless CONNECT or on_denied."""
        if at_connect or self.broker.guard.close_on_denied:
            self.fail(error, receipt)
            return
        self.reject(error, receipt)

    def reject(self, error: ClientError, receipt: str | None) -> None:
        """Nothing done, ERROR in frame order, and the connection goes on."""
        frame = self._error_frame(error, receipt)
        self.completions.add(None, lambda _: self.send(frame))

    def _error_frame(self, error: ClientError, receipt: str | None) -> Frame:
        headers = {"message": error.message, **error.headers, "content-type": "text/plain"}
        if receipt is not None:
            headers["receipt-id"] = receipt
        log.info("session %s (%s): ERROR %s", self.id, self.conn.peer, error.message)
        return Frame("ERROR", headers, error.detail.encode("utf-8", "replace"))

    def _authorize(self, right: Right, destination: str) -> None:
        assert self.principal is not None  # _handle lets nothing but CONNECT in before it is set
        if not is_temp(destination):  # open to every user (broker/engine/tempdest.py)
            self.broker.guard.authorize(self.principal, right, destination)

    def _destination(self, name: str | None, create: bool = True) -> str:
        """The broker's name for a destination the client names: its own temporary ones resolved."""
        if name is not None and name.startswith(LOCAL_TEMP_PREFIXES):
            return self.broker.temps.resolve(self._temp_names(), name, create) or name
        return check_destination(name)

    def _temp_names(self) -> TempNames:
        if self.temps is None:
            self.temps = TempNames(self.id)
        return self.temps

    # -- commands -----------------------------------------------------------------------------------

    def _handle(self, frame: Frame) -> None:
        command = frame.command
        if not self.connected:
            raise ClientError("not connected",
                              f"{command[:20]} before CONNECT: the first frame must be CONNECT")
        handler = _COMMANDS.get(command)
        if handler is None:
            raise ClientError("unknown command", f"{command[:20]!r} is not a STOMP client command")
        handler(self, frame)

    async def _connect(self, frame: Frame) -> None:
        if self.connected:
            raise ClientError("already connected", "a second CONNECT on one connection is not allowed")
        version, sends, expects = negotiate(frame, self.broker.limits)
        conn, broker = self.conn, self.broker
        credentials = Credentials(frame.get("login"), frame.get("passcode"), conn.peer, conn.scheme,
                                  conn.peer_certificate)
        principal = await log_in(broker.logins, broker.authenticator, credentials, f"session {self.id}")
        if self.closed or self.ending:
            return  # the connection went away while the authenticator ran
        if principal is None:
            # Nothing more: which of login or passcode was wrong, or whether the login exists, is
            # for the log, not for a possible attacker.
            raise ClientError("authentication failed", "the broker refused these credentials")
        if not self.broker.may_answer():
            raise ClientError("broker is not master", "this broker lost the shared lock; use the master")
        self.owner = owner_of(self.broker.authenticator, principal)
        self.scope = producer_scope(principal, conn.peer)
        client_id = frame.get("client-id")
        if client_id:
            self.broker.claim_client_id(self, client_id)
            self.client_id = client_id
        # `host` is accepted and ignored (one virtual host).
        self.principal = principal
        self.version = version
        self.connected = True
        self.conn.set_version(version)
        # Every version gets heart-beat, 1.0 too (always 0,0 there), as ActiveMQ sends it: clients
        # written against ActiveMQ read it whatever version they asked for.
        headers = {"version": version, "server": SERVER, "session": self.id,
                   "heart-beat": f"{sends},{expects}"}
        self.send(Frame("CONNECTED", headers))
        self.conn.start_heartbeat(sends, expects)

    def _send(self, frame: Frame) -> None:
        destination = self._destination(frame.get("destination"))
        if is_temp(destination):
            self.broker.temps.check_send(destination)
        self._authorize("write", destination)
        headers = frame.headers
        if headers.get("reply-to", "").startswith(LOCAL_TEMP_PREFIXES):
            headers = self.broker.temps.rewrite_reply_to(self._temp_names(), headers)
        message = from_send(self.broker.new_message_id(), destination, headers, frame.body)
        if message.producer_id is not None:
            message.producer_id = scoped_id(self.scope, message.producer_id)
        tx_id = frame.get("transaction")
        if tx_id is not None:
            transaction = self.transactions.get(tx_id)
            self.broker.check_accepting()
            self.broker.check_room(message)
            self.transactions.add_send(transaction, message)
            self._complete(frame)
            return
        write, apply, undo = self.broker.accept(message)
        self._complete(frame, write, apply, undo)

    def _subscribe(self, frame: Frame) -> None:
        destination = self._destination(frame.get("destination"))
        if is_temp(destination):
            self.broker.temps.check_consume(self.temps, destination, frame.get("activemq.subscriptionName"))
        self._authorize("read", destination)
        sub_id = frame.get("id") or (destination if self.version == "1.0" else None)
        if not sub_id:
            raise ClientError("missing id", "SUBSCRIBE requires an id header (STOMP 1.1+)")
        if sub_id in self.subscriptions or sub_id in self.browsers:
            # An ERROR, but the connection and the subscription already using the id go on.
            raise Rejected("duplicate subscription", f"subscription id {sub_id[:100]!r} is already in use")
        if len(self.subscriptions) + len(self.browsers) >= MAX_SUBSCRIPTIONS:
            raise ClientError("too many subscriptions", f"at most {MAX_SUBSCRIPTIONS} per connection")
        ack = frame.get("ack", "auto")
        if ack not in ACK_MODES:
            raise ClientError("invalid ack mode", f"ack must be one of {', '.join(ACK_MODES)}")
        prefetch = prefetch_size(frame, self.broker.limits.default_prefetch)
        selector_text = frame.get("selector") or None
        selector = compile_selector(selector_text, self.broker.limits) if selector_text else None
        if is_browser(frame):
            browser = self.browsers[sub_id] = QueueBrowser(self, sub_id, destination, selector)
            self._complete(frame)
            browser.pump()
            return
        name = frame.get("activemq.subscriptionName")
        write, key = None, None
        if is_topic(destination) and name:
            if not self.client_id:
                raise ClientError("missing client-id", "a durable subscription needs client-id on CONNECT")
            durable, write = self.broker.attach_durable(
                self.client_id, name, destination, selector_text, selector, self.owner)
            queue, key = durable.queue, durable.key
        elif is_topic(destination):
            topic = self.broker.destinations.topic(destination)
            private = f"{destination}#{self.id}/{sub_id}"
            queue = Queue(private, self.broker, durable=False, memory=topic.memory.share(private, None),
                          policy=self.broker.policy_for(destination))
            topic.attach(queue, selector, durable=False, pending_limit=pending_limit(frame))
        else:
            queue = self.broker.destinations.queue(destination)
        subscription = Subscription(self, sub_id, destination, queue, ack, prefetch, selector, key)
        subscription.exclusive = (frame.get(EXCLUSIVE) or "").lower() == "true"
        self.subscriptions[sub_id] = subscription
        queue.add_consumer(subscription)
        self._complete(frame, write)
        queue.dispatch()

    def _unsubscribe(self, frame: Frame) -> None:
        sub_id = frame.get("id")
        if not sub_id and self.version == "1.0" and frame.get("destination"):
            sub_id = self._destination(frame.get("destination"), create=False)  # as SUBSCRIBE named it
        name = frame.get("activemq.subscriptionName")
        subscription = self.subscriptions.pop(sub_id or "", None)
        write = None
        if (browser := self.browsers.pop(sub_id or "", None)) is not None:
            browser.cancel()
        elif subscription is not None:
            self._detach(subscription)
            if name and subscription.durable_key:
                write = self.broker.drop_durable(subscription.durable_key)
        elif name and self.client_id:
            # ActiveMQ: UNSUBSCRIBE naming the durable subscription removes it even when not attached.
            key = durable_key(self.client_id, name)
            durable = self.broker.destinations.durables.get(key)
            if durable is None or durable.attached:
                raise ClientError("unknown subscription", f"no inactive durable subscription {name[:100]!r}")
            self.broker.guard.check_durable(durable, self.client_id, name, self.owner)
            write = self.broker.drop_durable(key)
        else:
            raise ClientError("unknown subscription", f"no subscription with id {str(sub_id)[:100]!r}")
        self._complete(frame, write)

    def _detach(self, subscription: Subscription, budget: Budget | None = None) -> None:
        """The consumer leaves: its unacked messages go back to the front of the queue, redelivered."""
        subscription.active = False
        queue = subscription.queue
        queue.remove_consumer(subscription)
        unacked = subscription.take_all()
        if subscription.durable_key is None and is_topic(subscription.destination):
            self.broker.destinations.topic(subscription.destination).detach(queue)
            queue.drain()
            queue.memory.close()
            return  # a non-durable topic subscription's messages had no other reader
        if subscription.durable_key is not None:
            durable = self.broker.destinations.durables.get(subscription.durable_key)
            if durable is not None:
                durable.attached = False
        queue.returned(unacked)
        queue.dispatch_within(budget or self.broker.slicer.budget())

    def _ack(self, frame: Frame, nack: bool = False) -> None:
        if frame.get("subscription") in self.browsers:
            self._complete(frame)  # a browser took nothing: its acks change nothing
            return
        subscription, ack_id = self._resolve_ack(frame)
        tx_id = frame.get("transaction")
        if tx_id is not None:
            self.transactions.get(tx_id).add_ack(subscription, ack_id, nack)
            self._complete(frame)
            return
        self.broker.settle(subscription.queue, subscription.take(ack_id), nack)
        durable = self.broker.removals_written() if frame.get("receipt") is not None else None
        self._complete(frame, durable)

    def _nack(self, frame: Frame) -> None:
        self._ack(frame, nack=True)

    def _resolve_ack(self, frame: Frame) -> tuple[Subscription, str]:
        """1.2: `id` = the MESSAGE's `ack` header; 1.1: message-id + subscription; 1.0: message-id."""
        ack_id = frame.get("id") if self.version == "1.2" else None
        subscription = self._acks.get(ack_id) if ack_id else None
        if ack_id is None:
            message_id = frame.get("message-id")
            if not message_id:
                raise ClientError("missing ack id", f"{frame.command} requires "
                                  + ("an id header" if self.version == "1.2" else "a message-id header"))
            sub_id = frame.get("subscription")
            candidates = ([self.subscriptions[sub_id]] if sub_id in self.subscriptions
                          else list(self.subscriptions.values()) if sub_id is None else [])
            for candidate in candidates:
                ack_id = candidate.ack_id_for(message_id)
                if ack_id is not None:
                    subscription = candidate
                    break
        if subscription is None or ack_id is None or ack_id not in subscription.unacked:
            raise ClientError("unknown ack id", f"{frame.command}: no unacknowledged message matches "
                              f"{dict(list(frame.headers.items())[:4])!r}")
        return subscription, ack_id

    def _begin(self, frame: Frame) -> None:
        self.transactions.begin(frame.get("transaction"))
        self._complete(frame)

    def _commit(self, frame: Frame) -> None:
        transaction = self.transactions.get(frame.get("transaction"))
        write, apply = self.broker.commit(transaction)  # NoRoom before anything is done
        self.transactions.end(transaction.id)
        self._complete(frame, write, apply)

    def _abort(self, frame: Frame) -> None:
        self.transactions.end(frame.get("transaction"))
        self._complete(frame)

    def _disconnect(self, frame: Frame) -> None:
        self.transactions.abort_all()
        self.ending = True
        receipt = frame.get("receipt")

        def finish(_: BaseException | None) -> None:
            # STOMP 1.2 "DISCONNECT": the receipt comes after every earlier frame has been handled.
            # Release first, so a client that reconnects on the receipt finds its client-id and
            # durable subscriptions free.
            self._release()
            if receipt is not None and self.broker.may_answer():
                self.send(Frame("RECEIPT", {"receipt-id": receipt}))
            self.conn.close()

        self.completions.add(self.broker.removals_written() if receipt is not None else None, finish)


_COMMANDS: dict[str, Callable[[Session, Frame], None]] = {
    "SEND": Session._send,
    "SUBSCRIBE": Session._subscribe,
    "UNSUBSCRIBE": Session._unsubscribe,
    "ACK": Session._ack,
    "NACK": Session._nack,
    "BEGIN": Session._begin,
    "COMMIT": Session._commit,
    "ABORT": Session._abort,
    "DISCONNECT": Session._disconnect,
}
