"""The asyncio STOMP client: `connect(url)` -> `Client` (send, subscribe, transactions).

Layers, bottom up: `handshake` (CONNECT/CONNECTED, pure), `connection` (one session over one
stream: receipts, MESSAGE dispatch, heart-beats), `dialer` (which broker of a URL to open),
`ledger` (what a reconnect must replay), `subscription` and `client` (the user API over a
replaceable connection). Imports only `config` and the rest of `transports`.
"""

from transports.client.client import Client, Transaction, connect
from transports.client.errors import ClientError, ConnectFailed, ConnectionLost
from transports.client.state import ConnectionState
from transports.client.subscription import Message, Subscription

__all__ = [
    "Client",
    "ClientError",
    "ConnectFailed",
    "ConnectionLost",
    "ConnectionState",
    "Message",
    "Subscription",
    "Transaction",
    "connect",
]
