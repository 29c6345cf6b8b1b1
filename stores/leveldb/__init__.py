"""The LevelDB store (`<levelDB/>`): messages, subscriptions and the duplicate window in one plyvel DB.

`keys` is the pure key/value encoding (documented in FORMAT.md beside it); `store` is the async
`Store` over it. LevelDB gives ordered keys and atomic write batches, so a group commit is one
`WriteBatch` written with a single `sync=True`.
"""
