"""Transports: how bytes reach the broker. The sans-I/O STOMP codec, the transport-independent
STOMP connection and listener (base.py names the seams), the TCP connector, the scheme table that
picks a connector for a URI, failover URLs and the failover client.

Imports only `config`; the broker hands the connector a handler, never the other way round.
"""
