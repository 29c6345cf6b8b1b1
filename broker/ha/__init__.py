"""High availability: the state machine of design.md section 1 around the engine.

`lifecycle` waits as a slave and runs one `master.MasterTerm` per lock it wins: fence the old
master, wait until it is gone, recover the store (warm from `standby` where the store can follow),
bind the connectors, then keep the lock on the `keepalive` thread with a `lease` and a `watchdog`.
The lock protocol itself is `stores.lock`; `roles` holds the roles and exit codes.
"""
