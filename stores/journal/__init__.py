"""The journal store (`journal`, ActiveMQ `<kahaDB/>`): append-only data files plus a checkpointed index.

Layout and recovery are specified in FORMAT.md beside this file. Modules: `records` and
`checkpoint` (pure encoders/decoders), `layout` (path rules), `writer` (the current data file),
`reader` and `recovery` (opening), `index` (live messages), `cleanup` (compaction and deletion),
`store` (the `JournalStore` that ties them to the GroupCommitter).
"""
