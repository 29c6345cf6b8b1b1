"""Transports: how bytes reach the broker. The sans-I/O STOMP codec, the asyncio TCP
connector that feeds it, failover URLs and the failover client.

Imports only `config`; the broker hands the connector a handler, never the other way round.
"""
