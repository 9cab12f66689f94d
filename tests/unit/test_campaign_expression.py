"""The campaign condition language: what parses, where a bad expression is refused, the limits,
and evaluation on synthetic streams."""

from __future__ import annotations

import pytest

from prognos.campaigns.expression import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_SIGNALS,
    MAX_TEXT_CHARS,
    MAX_WINDOW_S,
    Comparison,
    ExpressionError,
    History,
    Last,
    Logic,
    Window,
    evaluate,
    parse_expression,
    value_of,
)
from prognos.catalog import default_catalog
from prognos.errors import ConfigError

CATALOG = default_catalog()
SPEED = "Vehicle.Speed"
TEMP = "Vehicle.Powertrain.ElectricMotor.Temperature"


def test_a_condition_parses_into_a_typed_tree_with_its_signals_and_window() -> None:
    expression = parse_expression(f"{SPEED} > 100 and max({TEMP}, 30) >= 90", signals=CATALOG)
    assert isinstance(expression.root, Logic) and expression.root.operator == "and"
    left = expression.root.left
    assert isinstance(left, Comparison) and left.left == Last(SPEED, 0)
    right = expression.root.right
    assert isinstance(right, Comparison) and isinstance(right.left, Window)
    assert right.left.window_s == 30.0
    assert expression.signals == {SPEED, TEMP}
    assert expression.window_s == 30.0


@pytest.mark.parametrize(
    "text",
    [
        "true",
        "not false",
        f"last({SPEED}) != 0",
        f"changed({SPEED})",
        f"-{SPEED} * 2 + 1 / 4 < (3 - .5e1)",
        f"min({SPEED}, 1) < max({SPEED}, 3600) or avg({TEMP}, 0.5) == 1",
        f"not ({SPEED} > 1 and {TEMP} > 2) or changed({TEMP}) == true",
        f"  {SPEED}>=1\n",
    ],
)
def test_valid_conditions_parse(text: str) -> None:
    assert parse_expression(text, signals=CATALOG).text == text


@pytest.mark.parametrize(
    "text, position, words",
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        (f"{SPEED} >", len(SPEED) + 2, "expected a value"),
        (f"{SPEED} > 1 and", len(SPEED) + 8, "expected a value"),
        (f"{SPEED}", 0, "must be true or false"),
        (f"{SPEED} + 1", len(SPEED) + 1, "must be true or false"),
        ("Vehicle.Nope > 1", 0, "unknown signal 'Vehicle.Nope'"),
        (f"{SPEED} > 1 $", len(SPEED) + 5, "unexpected character '$'"),
        ("1 < 2 < 3", 6, "do not chain"),
        (f"sqrt({SPEED}) > 1", 0, "unknown function 'sqrt'"),
        (f"min({SPEED}) > 1", len(SPEED) + 4, "','"),
        (f"min({SPEED}, x) > 1", len(SPEED) + 6, "window must be a number"),
        (f"avg({SPEED}, 0) > 1", len(SPEED) + 6, "outside"),
        (f"avg({SPEED}, {MAX_WINDOW_S + 1:g}) > 1", len(SPEED) + 6, "outside"),
        ("last(3) > 1", 5, "takes a signal name"),
        (f"last({SPEED}, 3) > 1", len(SPEED) + 5, "')'"),
        (f"({SPEED} > 1", len(SPEED) + 5, "expected ')'"),
        (f"{SPEED} > 1)", len(SPEED) + 4, "expected an operator or the end"),
        (f"{SPEED} and true", 0, "'and' needs a truth value"),
        (f"not {SPEED}", 4, "'not' needs a truth value"),
        (f"true + {SPEED} > 1", 0, "'+' needs a number"),
        (f"changed({SPEED}) < 1", 0, "'<' needs a number"),
        ("-true", 1, "'-' needs a number"),
        ("1e999 > 1", 0, "out of range"),
        ("12abc > 1", 0, "malformed number"),
        ("1..2 > 1", 0, "malformed number"),
        ("avg > 1", 0, "avg is a function"),
        ("1 > and", 4, "expected a value, found 'and'"),
    ],
)
def test_bad_conditions_are_refused_with_the_position_of_the_fault(
    text: str, position: int, words: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text, signals=CATALOG)
    assert caught.value.position == position, str(caught.value)
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"column {position + 1}: ")
    assert isinstance(caught.value, ConfigError)


def test_any_signal_name_is_accepted_without_a_catalog() -> None:
    assert parse_expression("Some.Signal > 1").signals == {"Some.Signal"}


def test_the_limits_are_checked_when_parsing() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        parse_expression("1" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(ExpressionError, match="deeper than") as deep:
        parse_expression("(" * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1))
    assert deep.value.position == MAX_DEPTH
    with pytest.raises(ExpressionError, match="deeper than"):
        parse_expression("not " * 400 + "true")
    with pytest.raises(ExpressionError, match="deeper than"):
        parse_expression("-" * 1000 + "1 > 0")
    with pytest.raises(ExpressionError, match=f"more than {MAX_NODES} parts"):
        parse_expression(" + ".join(["1"] * MAX_NODES) + " > 0")
    many = " or ".join(f"S{i} > 0" for i in range(MAX_SIGNALS + 1))
    with pytest.raises(ExpressionError, match=f"more than {MAX_SIGNALS} signals") as wide:
        parse_expression(many)
    assert wide.value.position == many.index(f"S{MAX_SIGNALS}")
    parse_expression("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH)


# --- evaluation -----------------------------------------------------------------------------------


def test_last_comparison_and_arithmetic_on_a_stream() -> None:
    expression = parse_expression("S * 2 - 1 > 9")
    history = History(signals=expression.signals, window_s=expression.window_s)
    assert not evaluate(expression, history, 0.0)  # no sample yet: unknown, so false
    history.add("S", 0.0, 5.0)
    assert not evaluate(expression, history, 0.0)
    history.add("S", 1.0, 5.5)
    assert evaluate(expression, history, 1.0)


def test_window_functions_see_only_their_window() -> None:
    expression = parse_expression("max(S, 10) > 50 and min(S, 10) >= 0 and avg(S, 2) < 30")
    history = History(signals=expression.signals, window_s=expression.window_s)
    for time_s, value in [(0.0, 100.0), (5.0, 20.0), (9.0, 20.0), (10.0, 20.0)]:
        history.add("S", time_s, value)
    assert evaluate(expression, history, 10.0)  # 100 at t=0 is still within [0, 10]
    history.add("S", 11.0, 20.0)
    assert not evaluate(expression, history, 11.0)  # it has left the window
    assert value_of(expression.root, history, 11.0) is False


def test_history_keeps_only_its_window_and_its_last_two_samples() -> None:
    history = History(signals=["S"], window_s=5.0)
    for second in range(100):
        history.add("S", float(second), float(second))
    assert [t for t, _ in history.samples("S")] == [94.0, 95.0, 96.0, 97.0, 98.0, 99.0]
    zero = History(signals=["S"], window_s=0.0)
    for second in range(10):
        zero.add("S", float(second), 1.0)
    assert len(list(zero.samples("S"))) == 2
    capped = History(signals=["S"], window_s=1e6, max_samples=8)
    for second in range(100):
        capped.add("S", float(second), 1.0)
    assert len(list(capped.samples("S"))) == 8


def test_history_ignores_other_signals_late_and_non_finite_samples() -> None:
    history = History(signals=["S"], window_s=10.0)
    history.add("T", 0.0, 1.0)
    history.add("S", 5.0, 1.0)
    history.add("S", 4.0, 2.0)
    history.add("S", 6.0, float("nan"))
    assert list(history.samples("S")) == [(5.0, 1.0)]
    assert list(history.samples("T")) == []
    with pytest.raises(ConfigError):
        History(signals=["S"], window_s=float("inf"))


def test_changed_compares_the_last_two_samples() -> None:
    expression = parse_expression("changed(S)")
    history = History(signals=expression.signals, window_s=0.0)
    history.add("S", 0.0, 1.0)
    assert not evaluate(expression, history, 0.0)
    history.add("S", 1.0, 2.0)
    assert evaluate(expression, history, 1.0)
    history.add("S", 2.0, 2.0)
    assert not evaluate(expression, history, 2.0)


def test_unknown_values_follow_three_valued_logic() -> None:
    history = History(signals=["S", "Missing"], window_s=10.0)
    history.add("S", 0.0, 1.0)

    def value(text: str) -> object:
        return value_of(parse_expression(text).root, history, 0.0)

    assert value("Missing > 0") is None
    assert value("Missing > 0 or S > 0") is True
    assert value("S > 0 or Missing > 0") is True
    assert value("Missing > 0 and S < 0") is False
    assert value("Missing > 0 and S > 0") is None
    assert value("not (Missing > 0)") is None
    assert value("S / 0 > 1") is None
    assert value("S * 1e308 * 10 > 1") is None
    assert value("-avg(Missing, 5) < 1") is None
    assert value("(S == 1) == true") is True
