"""The asyncio STOMP client: `connect(url)` -> `Client` (send, subscribe, transactions).

Layers, bottom up: `handshake` (CONNECT/CONNECTED, pure), `connection` (one session over one
stream: receipts, MESSAGE dispatch, heart-beats), `dialer` (which broker of a URL to open, with
back-off), `ledger` (what a reconnect must replay), `replay` (the pure failover decisions),
`failover` (the reconnect task and the gate callers wait at), `subscription`, `transaction` and
`client` (the user API over a replaceable connection). Imports only `config` and the rest of
`transports`. docs/client.md describes the API and the failover semantics.
"""

from transports.client.client import Client, connect
from transports.client.errors import (
    BrokerRefused,
    ClientError,
    ClientTimeout,
    ConnectFailed,
    ConnectionLost,
    ReconnectFailed,
    TransactionInDoubt,
    TransactionRolledBack,
)
from transports.client.state import ConnectionEvent, ConnectionState
from transports.client.stats import ClientStats
from transports.client.subscription import Message, Subscription
from transports.client.transaction import Transaction

__all__ = [
    "BrokerRefused",
    "Client",
    "ClientError",
    "ClientStats",
    "ClientTimeout",
    "ConnectFailed",
    "ConnectionEvent",
    "ConnectionLost",
    "ConnectionState",
    "Message",
    "ReconnectFailed",
    "Subscription",
    "Transaction",
    "TransactionInDoubt",
    "TransactionRolledBack",
    "connect",
]
