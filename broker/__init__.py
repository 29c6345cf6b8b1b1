"""The broker: the STOMP engine (sessions, queues, topics, subscriptions, transactions), the
master/slave lifecycle around it, and the command line. The only package that wires
`stores`, `transports` and `config` together.
"""
