"""Password hashes: argon2id through argon2-cffi (the reference implementation's binding).

Only hashes are kept, in files and in memory. `verify` is the reference implementation's
comparison, which takes the same time whatever the first differing byte. It costs tens of
milliseconds of CPU and 64 MiB by design, so callers on the event loop run it in a worker thread
(broker/engine/users.py). A plain password found in an ActiveMQ file is hashed once at load.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

PREFIX = "$argon2id$"
MAX_HASH = 512  # an encoded argon2id hash is about 100 characters
MAX_PASSWORD = 4096  # a longer passcode is refused unhashed: no CPU spent on it
# A hash names its own cost; these bounds keep one from a config file from taking the machine
# (each CONNECT with that user's name pays it).
MAX_MEMORY_KIB = 1024 * 1024
MAX_TIME_COST = 20
MAX_PARALLELISM = 16


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults are RFC 9106's second recommendation (t=3, m=64 MiB, p=4).
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_hash(text: str) -> None:
    """Raise ValueError unless `text` is an argon2id hash this module can verify."""
    if not text.startswith(PREFIX) or len(text) > MAX_HASH:
        raise ValueError("must be an argon2id hash ($argon2id$...) as `batonmq passwd` prints")
    try:
        _hasher().check_needs_rehash(text)  # parses the hash without hashing anything
        params = extract_parameters(text)
    except (InvalidHashError, ValueError):
        raise ValueError("is not a well-formed argon2id hash") from None
    if (params.memory_cost > MAX_MEMORY_KIB or params.time_cost > MAX_TIME_COST
            or params.parallelism > MAX_PARALLELISM):
        raise ValueError(f"asks for more than m={MAX_MEMORY_KIB},t={MAX_TIME_COST},p={MAX_PARALLELISM}")


def verify(encoded: str, password: str) -> bool:
    """Does `password` match `encoded`? Slow on purpose: never call it on the event loop."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher().verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def decoy_hash() -> str:
    """A hash no password is known for: checked for unknown users, so that a wrong user name
    takes as long as a wrong password and the timing does not tell which users exist."""
    return hash_password("no user has this password: " + PREFIX)
