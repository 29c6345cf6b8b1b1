"""The one error root, with subclasses by whose fault it is."""


class BrokerError(Exception):
    """Root of every error BatonMQ raises on purpose."""


class ConfigError(BrokerError):
    """Invalid configuration: `key` names the offending setting, `problem` says why."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
