"""`batonmq fscheck`: does this directory's file system give BatonMQ the locking it relies on?

Like IBM MQ's `amqmfsck`, it exercises the real thing: the broker's own lock (stores.lock) on a
private scratch directory, holders in separate processes killed with SIGKILL, records fsynced by
one holder and read back by the next, and, with `--peer`, two instances on two hosts testing each
other through files in the shared directory. `checks` runs the checks, `mountinfo` names the file
system, `peer` is the two-host exchange, `worker` is the holder process, `records` the record
format of the handover check, `report` renders results. Imports only `stores` and `config`.
"""
