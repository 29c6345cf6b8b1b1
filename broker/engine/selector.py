"""JMS message selectors (the SQL-92 subset of the JMS 1.1 spec, section 3.8.1), hand-parsed.

Supported: identifiers (message headers; JMSPriority, JMSType, JMSCorrelationID, JMSMessageID,
JMSTimestamp, JMSExpiration, JMSDeliveryMode map to their STOMP headers), string / numeric / boolean
literals, `= <> < > <= >=`, `AND OR NOT`, `[NOT] IN (...)`, `[NOT] LIKE 'pat' [ESCAPE 'c']`,
`[NOT] BETWEEN a AND b`, `IS [NOT] NULL`, parentheses. Not supported: arithmetic.

Evaluation uses SQL three-valued logic: a missing header is NULL (unknown), and a message matches only
when the whole expression is TRUE. Header values are strings on the wire, so a comparison with a
numeric literal converts the header to a number (an unconvertible value compares as unknown).

Nothing here evaluates code: the parser builds closures over a fixed set of operations. A selector
is untrusted input that runs once per message, so its cost is bounded when it is compiled, at
SUBSCRIBE, where a refusal is the subscriber's ERROR alone (`Limits.selector_*`):

- length of the text and of each LIKE pattern, and nesting depth of parentheses and NOTs: the
  parser and the evaluator recurse once per level, so the depth limit (at most 64) keeps both far
  from Python's recursion limit whatever the input; AND and OR chains are flat, adding no depth;
- cost: one unit per operator, identifier and literal, and `like.SCAN_COST` more for each LIKE
  segment that needs a character-by-character scan, so evaluating a selector on a message costs
  a bounded number of steps, each linear in the header it reads (LIKE by broker/like.py).

A fault while evaluating (a bug, memory) is contained in the owner's selector: as ActiveMQ does
("Selector failed to evaluate"), it is logged and that message does not match that subscription;
the sender and every other subscriber are unaffected.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from broker.engine.errors import ClientError
from broker.engine.like import SCAN_COST, Like, LikeError
from config.model import Limits

log = logging.getLogger(__name__)

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


class SelectorLimits(NamedTuple):
    max_length: int
    max_depth: int
    max_cost: int
    max_like_length: int

    @classmethod
    def of(cls, limits: Limits) -> SelectorLimits:
        return cls(*(getattr(limits, f"selector_{name}") for name in cls._fields))


class _Parser:
    def __init__(self, text: str, limits: SelectorLimits) -> None:
        self.text = text
        self.limits = limits
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0
        self.cost = 0

    def fail(self, problem: str) -> SelectorError:
        return SelectorError(self.text, problem)

    def spend(self, units: int = 1) -> None:
        self.cost += units
        if self.cost > self.limits.max_cost:
            raise self.fail(f"too costly to evaluate: more than {self.limits.max_cost} operations "
                            "(limits.selector_max_cost)")

    def enter(self) -> None:
        # Each level is one frame of the parser's recursion now and of the evaluator's later.
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise self.fail(f"nested too deeply: more than {self.limits.max_depth} levels of "
                            "parentheses and NOT (limits.selector_max_depth)")

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
        terms = [self.conjunction()]
        while self.accept("kw", "OR"):
            self.spend()
            terms.append(self.conjunction())
        return _any(terms)

    def conjunction(self) -> Pred:
        terms = [self.negation()]
        while self.accept("kw", "AND"):
            self.spend()
            terms.append(self.negation())
        return _all(terms)

    def negation(self) -> Pred:
        if self.accept("kw", "NOT"):
            self.spend()
            self.enter()
            inner = self.negation()
            self.depth -= 1
            return lambda m: None if (r := inner(m)) is None else not r
        return self.predicate()

    def predicate(self) -> Pred:
        if self.peek("op", "("):
            start, cost = self.pos, self.cost
            self.pos += 1
            self.enter()
            inner = self.disjunction()
            self.expect("op", ")")
            self.depth -= 1
            if not self._comparison_follows():
                return inner
            self.pos, self.cost = start, cost  # a parenthesised operand, e.g. "(a) = 'x'": reparse as a value
        left = self.operand()
        if self._comparison_follows():
            op = self.expect("op")
            self.spend()
            return _compare(op, left, self.operand())
        negate = self.accept("kw", "NOT")
        self.spend()
        if self.accept("kw", "IN"):
            return _negated(negate, self.in_list(left))
        if self.accept("kw", "LIKE"):
            return _negated(negate, self.like(left))
        if self.accept("kw", "BETWEEN"):
            low = self.operand()
            self.expect("kw", "AND")
            high = self.operand()
            return _negated(negate, _all([_compare(">=", left, low), _compare("<=", left, high)]))
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
        self.spend()
        if self.accept("op", "("):
            self.enter()
            value = self.operand()
            self.expect("op", ")")
            self.depth -= 1
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
        members = frozenset(values)  # one hash lookup per evaluation, however long the list
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
        if len(pattern) > self.limits.max_like_length:
            raise self.fail(f"LIKE pattern longer than {self.limits.max_like_length} characters "
                            "(limits.selector_max_like_length)")
        try:
            matcher = Like(pattern, escape)
        except LikeError as error:
            raise self.fail(str(error)) from None
        self.spend(SCAN_COST * matcher.scans)
        match = matcher.match
        return lambda m: None if (v := left(m)) is None else match(str(v))


def compile_selector(text: str, limits: Limits | None = None) -> Pred:
    """Parse `text` within `limits` (the defaults if None); the result maps a message to True
    (match), False or None (unknown), and never raises."""
    bounds = SelectorLimits.of(limits or Limits.model_construct())  # the defaults, unvalidated
    if len(text) > bounds.max_length:
        raise SelectorError(text, f"longer than {bounds.max_length} characters (limits.selector_max_length)")
    if not text.strip():
        raise SelectorError(text, "empty")
    return _contained(_Parser(text, bounds).parse(), text)


def _contained(pred: Pred, text: str) -> Pred:
    """`pred` with its faults kept to itself: logged (the first, then every 1000th), no match."""
    faults = 0

    def evaluate(m: Any) -> bool | None:
        nonlocal faults
        try:
            return pred(m)
        except Exception as error:
            faults += 1
            if faults == 1 or faults % 1000 == 0:
                log.warning("selector %r failed to evaluate (%d times): %r; the message does not match",
                            text[:200], faults, error)
            return None

    return evaluate


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


def _all(terms: list[Pred]) -> Pred:
    """AND of any number of terms (SQL: FALSE if one is FALSE, else unknown if one is unknown)."""
    return _chain(terms, decisive=False)


def _any(terms: list[Pred]) -> Pred:
    """OR of any number of terms (SQL: TRUE if one is TRUE, else unknown if one is unknown)."""
    return _chain(terms, decisive=True)


def _chain(terms: list[Pred], decisive: bool) -> Pred:
    """A flat chain in three-valued logic: the first term that gives `decisive` decides; else
    unknown if any term was unknown; else the other value. Flat, so its length adds no depth."""
    if len(terms) == 1:
        return terms[0]

    def pred(m: Any) -> bool | None:
        unknown = False
        for term in terms:
            r = term(m)
            if r is decisive:
                return decisive
            if r is None:
                unknown = True
        return None if unknown else not decisive

    return pred


def _negated(negate: bool, pred: Pred) -> Pred:
    if not negate:
        return pred
    return lambda m: None if (r := pred(m)) is None else not r
