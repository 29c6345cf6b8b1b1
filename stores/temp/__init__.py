"""The temporary store: non-persistent messages spilled out of memory (ActiveMQ's temp store).

A master with `limits.non_persistent = "spill"` writes the non-persistent messages a queue's memory
window has no room for here (and a temporary queue's persistent ones, which no store holds), keeps
a small reference, and reads them back in order as the window drains (broker/engine/spill.py,
docs/paging.md "The temporary store"). Nothing here survives the broker: the directory is wiped
when a master starts and when it stops, as ActiveMQ's tmp_storage.

    records.py   the record format: one framed, checksummed message per record (pure functions)
    segments.py  where records go and when a segment file may be deleted (pure bookkeeping)
    fifo.py      a queue's spilled messages as packed record locations, 12 bytes each
    files.py     the file layer: segment files written and read in one worker thread
"""
