"""The contract suite (contract.py, with the reads of readcontract.py and the heads of
headcontract.py), once per store."""

from tests.unit.stores.contract import StoreContract
from tests.unit.stores.headcontract import HeadContract
from tests.unit.stores.readcontract import ReadContract


class TestJournalContract(StoreContract, ReadContract, HeadContract):
    kind = "journal"


class TestLevelDBContract(StoreContract, ReadContract, HeadContract):
    kind = "leveldb"


class TestAppendLogContract(StoreContract, ReadContract, HeadContract):
    kind = "appendlog"
