"""Store names → implementations, imported lazily, plus the directory's store-type marker."""

from __future__ import annotations

import importlib
from pathlib import Path

from config.model import StoreSettings
from stores.base import Fence, FollowerSink, Store, StoreFollower, StoreMismatch
from stores.fsio import write_atomically

STORES: dict[str, str] = {
    "journal": "stores.journal.store:JournalStore",
    "leveldb": "stores.leveldb.store:LevelDBStore",
    "appendlog": "stores.appendlog.store:AppendLogStore",
}
XML_ELEMENTS = {"kahaDB": "journal", "levelDB": "leveldb", "amqPersistenceAdapter": "appendlog"}
MARKER = "STORE"


def store_class(kind: str) -> type[Store]:
    module_name, _, class_name = STORES[kind].partition(":")
    cls: type[Store] = getattr(importlib.import_module(module_name), class_name)
    return cls


def check_marker(data_dir: Path, kind: str) -> None:
    """Refuse a directory written by another store type; claim a new one. Changes nothing on refusal."""
    marker = Path(data_dir) / MARKER
    if marker.exists():
        found = marker.read_text(encoding="utf-8").strip()
        if found != kind:
            raise StoreMismatch(
                f"data directory {data_dir} holds a {found!r} store but the configuration asks for {kind!r}; "
                f"start with --store {found} or point --data at another directory"
            )
        return
    write_atomically(marker, (kind + "\n").encode())


def create_store(data_dir: Path, settings: StoreSettings, fence: Fence | None = None) -> Store:
    """Build (not open) the configured store under `<data_dir>/<kind>/`. Call with the lock held."""
    check_marker(data_dir, settings.type)
    return store_class(settings.type)(Path(data_dir) / settings.type, settings, fence)


def create_follower(data_dir: Path, settings: StoreSettings, sink: FollowerSink) -> StoreFollower | None:
    """A read-only follower of the configured store (a slave's hot standby), or None when that
    store type cannot be followed. Opens nothing for writing; the lock is not needed."""
    return store_class(settings.type).follower(Path(data_dir) / settings.type, settings, sink)


def can_follow(kind: str) -> bool:
    """Whether slaves of this store type keep a hot standby: its class overrides `Store.follower`."""
    own = getattr(store_class(kind).follower, "__func__", None)
    return own is not getattr(Store.follower, "__func__", None)
