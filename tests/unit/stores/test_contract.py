"""The contract suite (contract.py, with the reads of readcontract.py), once per store."""

from tests.unit.stores.contract import StoreContract
from tests.unit.stores.readcontract import ReadContract


class TestJournalContract(StoreContract, ReadContract):
    kind = "journal"


class TestLevelDBContract(StoreContract, ReadContract):
    kind = "leveldb"


class TestAppendLogContract(StoreContract, ReadContract):
    kind = "appendlog"
