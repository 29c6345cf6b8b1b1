"""The append-log store (`<amqPersistenceAdapter/>`): one segmented log replayed into memory.

Every `write(ops)` batch is one CRC32C-framed msgpack record; recovery replays every segment
(from the newest complete compaction snapshot on) into an in-memory model. Modules:
`records` (pure framing and payload codecs), `segments` (segment files), `state` (the in-memory
model), `recovery` (the read-only replay plan), `store` (the async `Store`). Format: FORMAT.md.
"""
