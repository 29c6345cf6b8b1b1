"""The hostile inputs of the fairness benchmark (issue 11), as plain functions: bytes and strings only.

Each builder says what it makes and how big; benchmarks/hostile.py sends them. Selectors stay within
the broker's selector length limit (broker/selector.py, MAX_LENGTH) so that they are refused or
accepted on their cost, never merely on their length.
"""

from __future__ import annotations

from transports.stomp import Frame, encode

SELECTOR_LIMIT = 4096  # characters (broker/selector.py MAX_LENGTH)
FIELD = "fair"  # a header the victim's messages never carry: every selector below is then unknown
MB = 1_000_000
MiB = 1024 * 1024
VERSION = "1.2"


def long_header_value(length: int = 8000) -> str:
    """A header value of `length` 'a's: the text a `LIKE '%a...b'` pattern fails on at every offset."""
    return "a" * length


def like_selector(header: str, limit: int = SELECTOR_LIMIT) -> str:
    """`header LIKE '%aaa...ab'`, as long as `limit` allows.

    Against a value of n 'a's a naive matcher retries the pattern from every offset: about n x k
    steps for k 'a's in the pattern (tens of millions here), although the pattern can never match.
    """
    head, tail = f"{header} LIKE '%", "b'"
    count = limit - len(head) - len(tail)
    if count < 1:
        raise ValueError(f"a selector limit of {limit} leaves no room for the pattern")
    return head + "a" * count + tail


def nested_parens(depth: int, leaf: str = f"{FIELD} = 1") -> str:
    """`((...(leaf)...))` with `depth` pairs of parentheses."""
    return "(" * depth + leaf + ")" * depth


def not_chain(count: int, leaf: str = f"{FIELD} = 1") -> str:
    """`NOT NOT ... leaf` with `count` NOTs: a recursive parser or evaluator goes `count` calls deep."""
    return "NOT " * count + leaf


def and_chain(count: int, leaf: str = f"{FIELD} = 1") -> str:
    """`leaf AND leaf AND ...` with `count` terms: a left-deep tree `count` levels deep."""
    return " AND ".join([leaf] * count)


def longest_not_chain(limit: int = SELECTOR_LIMIT) -> int:
    """The most NOTs that fit within `limit` characters."""
    return (limit - len(not_chain(0))) // len("NOT ")


def longest_and_chain(limit: int = SELECTOR_LIMIT) -> int:
    leaf = f"{FIELD} = 1"
    return (limit + len(" AND ")) // (len(leaf) + len(" AND "))


def deep_selectors(limit: int = SELECTOR_LIMIT) -> list[tuple[str, str]]:
    """(label, selector) pairs that overflow a recursive parser or evaluator, each within `limit`.

    NOT chains of several depths around Python's default recursion limit (1000): one may parse at
    SUBSCRIBE and overflow later, deeper in the stack, when a message is matched against it.
    """
    nots = longest_not_chain(limit)
    widest = (limit - len(nested_parens(0))) // 2
    pairs = [(f"parens x{d}", nested_parens(d)) for d in (100, widest)]
    depths = sorted({500, *range(900, nots, 10), nots})
    pairs += [(f"NOT x{d}", not_chain(d)) for d in depths]
    terms = longest_and_chain(limit)
    pairs.append((f"AND x{terms}", and_chain(terms)))
    return pairs


def newline_bursts(total: int, chunk: int = 64 * 1024) -> list[int]:
    """Sizes of the writes that make up `total` bytes of heart-beat EOLs, at most `chunk` each."""
    if total < 0 or chunk < 1:
        raise ValueError("total must be >= 0 and chunk >= 1")
    full, rest = divmod(total, chunk)
    return [chunk] * full + ([rest] if rest else [])


def send_head(destination: str, length: int, extra: dict[str, str] | None = None) -> bytes:
    """A SEND's command, headers (with `content-length: length`) and blank line; the body and NUL follow."""
    head = encode(Frame("SEND", {"destination": destination, **(extra or {})}), VERSION, content_length=False)
    # encode() ends a bodiless frame with the blank line and NUL: keep the header lines only.
    return head[: -len(b"\n\0")] + b"content-length:%d\n\n" % length


def unfinished_send(destination: str, content_length: int) -> bytes:
    """A SEND that announces `content_length` body bytes and carries one fewer: it never completes."""
    if content_length < 1:
        raise ValueError("content_length must be >= 1")
    return send_head(destination, content_length) + b"x" * (content_length - 1)


def transaction_plan(total: int, message_size: int) -> list[int]:
    """Body sizes of the SENDs that put `total` bytes into one transaction, `message_size` at most."""
    if total < 0 or message_size < 1:
        raise ValueError("total must be >= 0 and message_size >= 1")
    full, rest = divmod(total, message_size)
    return [message_size] * full + ([rest] if rest else [])
