"""Configuration: the validated settings every other package reads (`config.model`, loaded by
`config.loader` from TOML, ActiveMQ-style XML, `BATONMQ_*` variables and flags).

`config` is the bottom of the import graph: it imports nothing of ours, so `stores`,
`transports` and `broker` can all depend on it. The error root lives in `config.errors`, a module
with no imports at all, so that the STOMP codec and the store formats can raise `BrokerError`
without loading configuration (pydantic): this file deliberately imports nothing.
"""
