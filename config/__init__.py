"""Configuration: the validated settings every other package reads, and the error root.

`config` is the bottom of the import graph: it imports nothing of ours, so `stores`,
`transports` and `broker` can all depend on it.
"""

from config.errors import BrokerError, ConfigError
from config.model import BrokerConfig, Limits, LockSettings, StoreSettings

__all__ = ["BrokerConfig", "BrokerError", "ConfigError", "Limits", "LockSettings", "StoreSettings"]
