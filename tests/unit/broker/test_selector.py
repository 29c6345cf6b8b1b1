"""JMS selector subset: parsing, three-valued evaluation, and refusal of malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.engine.message import Message
from broker.engine.selector import SelectorError, compile_selector
from config.model import Limits


def msg(persistent: bool = False, **headers: str) -> Message:
    return Message("ID:1", "/queue/a", dict(headers), b"", persistent=persistent)


M = msg(colour="red", size="5", price="2.5", name="widget-42", flag="true", type="order", priority="7")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("colour = 'red'", True),
        ("colour <> 'red'", False),
        ("size > 3", True),
        ("size >= 5 AND size <= 5", True),
        ("price < 3.0", True),
        ("size > 3 AND colour = 'blue'", False),
        ("size > 30 OR colour = 'red'", True),
        ("NOT colour = 'blue'", True),
        ("colour IN ('green', 'red')", True),
        ("colour NOT IN ('green', 'red')", False),
        ("name LIKE 'widget-%'", True),
        ("name LIKE 'w_dget%'", True),
        ("name NOT LIKE '%gadget%'", True),
        ("name LIKE 'widget\\_%' ESCAPE '\\'", False),
        ("missing IS NULL", True),
        ("colour IS NOT NULL", True),
        ("size BETWEEN 1 AND 9", True),
        ("size NOT BETWEEN 1 AND 9", False),
        ("flag = TRUE", True),
        ("flag", True),
        ("colour", False),
        ("(colour = 'red' OR colour = 'blue') AND (size = 5)", True),
        ("JMSPriority > 5", True),
        ("JMSType = 'order'", True),
        ("JMSDeliveryMode = 'NON_PERSISTENT'", True),
        ("colour = 'it''s'", False),
        # SQL three-valued logic: a missing header is unknown, so neither it nor its negation matches.
        ("missing = 'x'", False),
        ("NOT missing = 'x'", False),
        ("missing = 'x' OR colour = 'red'", True),
        ("size > 'abc'", False),
        ("colour > 3", False),
    ],
)
def test_evaluation(selector: str, expected: bool) -> None:
    assert (compile_selector(selector)(M) is True) is expected


@pytest.mark.parametrize(
    "selector",
    ["", "colour =", "colour = 'red", "= 'x'", "a IN ()", "a LIKE 3", "(a = 1", "a = 1)", "a ! 1",
     "a NOT = 1", "a IS 5", "__import__('os')", "a = 1 AND", "(" * 40 + "a = 1" + ")" * 40, "a" * 5000],
)
def test_malformed_selectors_are_refused(selector: str) -> None:
    with pytest.raises(SelectorError):
        compile_selector(selector)


def test_like_is_linear_on_hostile_patterns() -> None:
    pred = compile_selector("name LIKE '" + "%a" * 50 + "%b'")
    assert pred(msg(name="a" * 5000)) is False


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab'()=<>%_ ,.0123456789ANDORNTISLKE", max_size=60))
def test_parser_only_ever_raises_selector_error(text: str) -> None:
    try:
        pred = compile_selector(text)
    except SelectorError:
        return
    assert pred(M) in (True, False, None)


# -- bounded cost (issue 11): refused at compile time, never a fault at evaluation time ------------


def refused(problem: str, text: str, limits: Limits | None = None) -> None:
    with pytest.raises(SelectorError) as info:
        compile_selector(text, limits)
    assert info.value.message == "invalid selector" and problem in info.value.detail, info.value.detail



def deep_stack(depth: int, call):  # type: ignore[no-untyped-def]
    """Run `call` under `depth` more Python frames, as a deep broker call path would."""
    return call() if depth == 0 else deep_stack(depth - 1, call)


@pytest.mark.parametrize(
    "selector",
    ["NOT " * 33 + "a = 'x'", "(" * 33 + "a = 'x'" + ")" * 33, "a = " + "(" * 33 + "'x'" + ")" * 33,
     "NOT " * 973 + "a = 'x'", "NOT (" * 17 + "a = 'x'" + ")" * 17],
)
def test_nesting_past_the_depth_limit_is_refused(selector: str) -> None:
    refused("nested too deeply", selector)


def test_nesting_at_the_limit_evaluates_even_from_a_deep_stack() -> None:
    pred = compile_selector("NOT " * 32 + "colour = 'red'")
    assert deep_stack(800, lambda: pred(M)) is True  # 32 levels leave Python's 1000 far away
    limits = Limits(selector_max_depth=64)
    assert compile_selector("NOT " * 63 + "colour = 'red'", limits)(M) is False


def test_long_and_or_chains_are_flat_not_deep() -> None:
    chain = " AND ".join(["size > 1"] * 60)
    assert deep_stack(900, lambda: compile_selector(chain)(M)) is True  # no frame per AND
    chain = " OR ".join(["colour = 'blue'"] * 59 + ["colour = 'red'"])
    assert compile_selector(chain)(M) is True


def test_a_selector_costing_more_than_the_limit_is_refused() -> None:
    chain = " OR ".join(["colour = 'blue'"] * 70)  # 4 operations a term
    refused("too costly", chain)
    assert compile_selector(chain, Limits(selector_max_cost=1000))(M) is False


def test_like_scans_count_against_the_cost() -> None:
    scanning = " OR ".join(["name LIKE '%w_d%'"] * 4)  # four character-by-character scans
    refused("too costly", scanning)
    assert compile_selector(" OR ".join(["name LIKE '%w_d%'"] * 3))(M) is True
    assert compile_selector(" OR ".join(["name LIKE '%wid%'"] * 40))(M) is True  # str.find: cheap


def test_like_pattern_length_is_bounded() -> None:
    refused("LIKE pattern longer than 1024", "name LIKE '" + "%" * 1025 + "'")
    assert compile_selector("name LIKE '" + "%" * 1024 + "'")(M) is True
    refused("LIKE pattern longer than 8", "name LIKE 'widget-%%'", Limits(selector_max_like_length=8))


def test_length_limit_follows_the_configuration() -> None:
    refused("longer than 16 characters", "colour = 'red' OR size > 1", Limits(selector_max_length=16))


def test_an_escape_character_ending_the_pattern_is_refused() -> None:
    refused("ends the pattern", "name LIKE 'widget!' ESCAPE '!'")


class Unprintable(str):
    """A header value that cannot be turned into a plain string: stands for any evaluation fault."""

    def __str__(self) -> str:
        raise RuntimeError("cannot be read")


def test_an_evaluation_fault_is_no_match_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    pred = compile_selector("name LIKE 'w%'")
    broken = msg(name=Unprintable("widget"))
    for _ in range(3):
        assert pred(broken) is None  # unknown: the message does not match, nothing is raised
    assert pred(msg(name="widget")) is True  # the selector goes on working
    faults = [r for r in caplog.records if "failed to evaluate" in r.getMessage()]
    assert len(faults) == 1  # the first fault is logged, not every one


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["TRUE", "FALSE", "NULL"]), min_size=1, max_size=6), st.booleans())
def test_flat_chains_keep_sql_three_valued_logic(values: list[str], conjunction: bool) -> None:
    terms = {"TRUE": "colour = 'red'", "FALSE": "colour = 'blue'", "NULL": "missing = 'x'"}
    text = (" AND " if conjunction else " OR ").join(terms[v] for v in values)
    truth = {"TRUE": True, "FALSE": False, "NULL": None}
    result = truth[values[0]]
    for v in values[1:]:  # SQL's binary AND / OR, folded left
        b = truth[v]
        if conjunction:
            result = False if False in (result, b) else None if None in (result, b) else True
        else:
            result = True if True in (result, b) else None if None in (result, b) else False
    assert compile_selector(text)(M) is result
