"""JMS message selectors (the SQL-92 subset of the JMS 1.1 spec, section 3.8.1), hand-parsed.

Supported: identifiers (message headers; JMSPriority, JMSType, JMSCorrelationID, JMSMessageID,
JMSTimestamp, JMSExpiration, JMSDeliveryMode map to their STOMP headers), string / numeric / boolean
literals, `= <> < > <= >=`, `AND OR NOT`, `[NOT] IN (...)`, `[NOT] LIKE 'pat' [ESCAPE 'c']`,
`[NOT] BETWEEN a AND b`, `IS [NOT] NULL`, parentheses. Not supported: arithmetic.

Evaluation uses SQL three-valued logic: a missing header is NULL (unknown), and a message matches only
when the whole expression is TRUE. Header values are strings on the wire, so a comparison with a
numeric literal converts the header to a number (an unconvertible value compares as unknown).

Nothing here evaluates code: the parser builds closures over a fixed set of operations, and every
input size (length, tokens, nesting, IN-list) is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from broker.engine.errors import ClientError

MAX_LENGTH = 4096
MAX_DEPTH = 32
MAX_IN_LIST = 256

Value = str | float | bool | None
Getter = Callable[[Any], Value]  # message -> value
Pred = Callable[[Any], bool | None]

_JMS_HEADERS = {
    "JMSPriority": "priority",
    "JMSType": "type",
    "JMSCorrelationID": "correlation-id",
    "JMSMessageID": "message-id",
    "JMSTimestamp": "timestamp",
    "JMSExpiration": "expires",
}
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "ESCAPE", "BETWEEN", "IS", "NULL", "TRUE", "FALSE"}
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<str>'(?:[^']|'')*')|(?P<op><>|<=|>=|[=<>(),])|(?P<id>[A-Za-z_$][A-Za-z0-9_$.]*))"
)


class SelectorError(ClientError):
    def __init__(self, text: str, problem: str) -> None:
        super().__init__("invalid selector", f"selector {text[:200]!r}: {problem}")


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SelectorError(text, f"unexpected character at offset {pos}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind)  # type: ignore[arg-type]
        if kind == "num":
            tokens.append(("lit", float(value)))
        elif kind == "str":
            tokens.append(("lit", value[1:-1].replace("''", "'")))
        elif kind == "id" and value.upper() in _KEYWORDS:
            tokens.append(("kw", value.upper()))
        else:
            tokens.append((kind, value))  # type: ignore[arg-type]
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def fail(self, problem: str) -> SelectorError:
        return SelectorError(self.text, problem)

    def peek(self, kind: str, value: Any = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        k, v = self.tokens[self.pos]
        return k == kind and (value is None or v == value)

    def accept(self, kind: str, value: Any = None) -> bool:
        if self.peek(kind, value):
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, value: Any = None) -> Any:
        if not self.peek(kind, value):
            found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of selector"
            raise self.fail(f"expected {value or kind}, found {found!r}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def parse(self) -> Pred:
        pred = self.disjunction()
        if self.pos != len(self.tokens):
            raise self.fail(f"unexpected {self.tokens[self.pos][1]!r}")
        return pred

    def disjunction(self) -> Pred:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("nested too deeply")
        left = self.conjunction()
        while self.accept("kw", "OR"):
            left = _or(left, self.conjunction())
        self.depth -= 1
        return left

    def conjunction(self) -> Pred:
        left = self.negation()
        while self.accept("kw", "AND"):
            left = _and(left, self.negation())
        return left

    def negation(self) -> Pred:
        if self.accept("kw", "NOT"):
            inner = self.negation()
            return lambda m: None if (r := inner(m)) is None else not r
        return self.predicate()

    def predicate(self) -> Pred:
        if self.peek("op", "("):
            start = self.pos
            self.pos += 1
            inner = self.disjunction()
            self.expect("op", ")")
            if not self._comparison_follows():
                return inner
            self.pos = start  # a parenthesised operand, e.g. "(a) = 'x'" : reparse as a value
        left = self.operand()
        if self.peek("op") and self.tokens[self.pos][1] in ("=", "<>", "<", ">", "<=", ">="):
            op = self.expect("op")
            return _compare(op, left, self.operand())
        negate = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            return _negated(negate, self.in_list(left))
        if self.accept("kw", "LIKE"):
            return _negated(negate, self.like(left))
        if self.accept("kw", "BETWEEN"):
            low = self.operand()
            self.expect("kw", "AND")
            high = self.operand()
            return _negated(negate, _and(_compare(">=", left, low), _compare("<=", left, high)))
        if negate:
            raise self.fail("NOT must be followed by IN, LIKE or BETWEEN here")
        if self.accept("kw", "IS"):
            is_not = self.accept("kw", "NOT")
            self.expect("kw", "NULL")
            return (lambda m: left(m) is not None) if is_not else (lambda m: left(m) is None)
        return lambda m: _to_bool(left(m))  # a bare boolean identifier, e.g. "urgent"

    def _comparison_follows(self) -> bool:
        return self.peek("op") and self.tokens[self.pos][1] in ("=", "<>", "<", ">", "<=", ">=")

    def operand(self) -> Getter:
        if self.accept("op", "("):
            value = self.operand()
            self.expect("op", ")")
            return value
        if self.peek("lit"):
            literal = self.expect("lit")
            return lambda m: literal
        if self.accept("kw", "TRUE"):
            return lambda m: True
        if self.accept("kw", "FALSE"):
            return lambda m: False
        if self.accept("kw", "NULL"):
            return lambda m: None
        return _identifier(self.expect("id"))

    def in_list(self, left: Getter) -> Pred:
        self.expect("op", "(")
        values: list[str] = []
        while True:
            literal = self.expect("lit")
            if not isinstance(literal, str):
                raise self.fail("IN takes string literals")
            values.append(literal)
            if len(values) > MAX_IN_LIST:
                raise self.fail(f"IN list longer than {MAX_IN_LIST}")
            if not self.accept("op", ","):
                break
        self.expect("op", ")")
        members = frozenset(values)
        return lambda m: None if (v := left(m)) is None else str(v) in members

    def like(self, left: Getter) -> Pred:
        pattern = self.expect("lit")
        escape = None
        if self.accept("kw", "ESCAPE"):
            escape = self.expect("lit")
            if not isinstance(escape, str) or len(escape) != 1:
                raise self.fail("ESCAPE takes one character")
        if not isinstance(pattern, str):
            raise self.fail("LIKE takes a string pattern")
        compiled = _compile_like(pattern, escape)
        return lambda m: None if (v := left(m)) is None else _like(compiled, str(v))


def compile_selector(text: str) -> Pred:
    """Parse `text`; the result maps a message to True (match), False or None (unknown)."""
    if len(text) > MAX_LENGTH:
        raise SelectorError(text, f"longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise SelectorError(text, "empty")
    return _Parser(text).parse()


def _identifier(name: str) -> Getter:
    if name == "JMSDeliveryMode":
        return lambda m: "PERSISTENT" if m.persistent else "NON_PERSISTENT"
    if name == "JMSMessageID":
        return lambda m: m.message_id
    header = _JMS_HEADERS.get(name, name)
    return lambda m: m.headers.get(header)


def _coerce(a: Value, b: Value) -> tuple[Value, Value] | None:
    """Bring two values to one type; None when they cannot be compared (SQL unknown)."""
    if a is None or b is None:
        return None
    if isinstance(a, bool) or isinstance(b, bool):
        a, b = _to_bool(a), _to_bool(b)
        return None if a is None or b is None else (a, b)
    if isinstance(a, float) or isinstance(b, float):
        a, b = _to_float(a), _to_float(b)
        return None if a is None or b is None else (a, b)
    return a, b


def _to_bool(v: Value) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def _to_float(v: Value) -> float | None:
    if isinstance(v, float):
        return v
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _compare(op: str, left: Getter, right: Getter) -> Pred:
    fn = _OPS[op]
    ordering = op not in ("=", "<>")

    def pred(m: Any) -> bool | None:
        pair = _coerce(left(m), right(m))
        if pair is None:
            return None
        a, b = pair
        if ordering and not isinstance(a, float):
            return None  # JMS: ordering comparisons are defined for numbers only
        return fn(a, b)

    return pred


def _and(left: Pred, right: Pred) -> Pred:
    def pred(m: Any) -> bool | None:
        a = left(m)
        if a is False:
            return False
        b = right(m)
        if b is False:
            return False
        return None if a is None or b is None else True

    return pred


def _or(left: Pred, right: Pred) -> Pred:
    def pred(m: Any) -> bool | None:
        a = left(m)
        if a is True:
            return True
        b = right(m)
        if b is True:
            return True
        return None if a is None or b is None else False

    return pred


def _negated(negate: bool, pred: Pred) -> Pred:
    if not negate:
        return pred
    return lambda m: None if (r := pred(m)) is None else not r


def _compile_like(pattern: str, escape: str | None) -> list[tuple[str, str]]:
    """Pattern as (kind, char) pairs: ('%', ''), ('_', ''), ('c', literal char)."""
    out: list[tuple[str, str]] = []
    chars = iter(pattern)
    for ch in chars:
        if escape is not None and ch == escape:
            out.append(("c", next(chars, "")))
        elif ch in "%_":
            out.append((ch, ""))
        else:
            out.append(("c", ch))
    return out


def _like(pattern: list[tuple[str, str]], text: str) -> bool:
    """Wildcard match by the two-pointer method: O(len(text) * len(pattern)) worst case, no regex
    backtracking blow-up on hostile patterns."""
    t = p = 0
    star_p, star_t = -1, 0
    while t < len(text):
        if p < len(pattern) and (pattern[p][0] == "_" or pattern[p] == ("c", text[t])):
            t, p = t + 1, p + 1
        elif p < len(pattern) and pattern[p][0] == "%":
            star_p, star_t = p, t
            p += 1
        elif star_p >= 0:
            p, star_t = star_p + 1, star_t + 1
            t = star_t
        else:
            return False
    while p < len(pattern) and pattern[p][0] == "%":
        p += 1
    return p == len(pattern)
