"""The contract suite (contract.py), once per store."""

from tests.unit.stores.contract import StoreContract


class TestJournalContract(StoreContract):
    kind = "journal"


class TestLevelDBContract(StoreContract):
    kind = "leveldb"


class TestAppendLogContract(StoreContract):
    kind = "appendlog"
