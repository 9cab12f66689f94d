"""The condition language of campaigns: parsed into a small typed AST, never `eval`ed.

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | "true" | "false" | SIGNAL | call | "(" or ")"
    call       := ("last" | "changed") "(" SIGNAL ")"
                | ("min" | "max" | "avg") "(" SIGNAL "," NUMBER ")"

A SIGNAL is a VSS path from the catalog (a bare path means its last value); the NUMBER of a window
function is its window in seconds. Every expression is typed when parsed: arithmetic and
comparisons take numbers, and/or/not take truth values, and a condition is a truth value.

The cost of an evaluation is bounded when the text is parsed: at most MAX_TEXT_CHARS characters,
MAX_NODES nodes, MAX_DEPTH levels of nesting, MAX_SIGNALS distinct signals and windows of at most
MAX_WINDOW_S seconds over a History that keeps at most MAX_SAMPLES samples a signal.

A signal without a value yet, a division by zero or an overflow make a value unknown (None);
and/or follow Kleene's three-valued logic (false and unknown is false), and a condition that
comes out unknown does not hold.
"""

from __future__ import annotations

import math
import operator as ops
import re
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from prognos.errors import ConfigError

MAX_TEXT_CHARS = 2000
MAX_NODES = 200
MAX_DEPTH = 24
MAX_SIGNALS = 16
MAX_WINDOW_S = 3600.0
MAX_SAMPLES = 4096  # per signal in a History: 1 Hz for an hour of window, with room to spare

WINDOW_FUNCTIONS = ("min", "max", "avg")
FUNCTIONS = ("last", "changed", *WINDOW_FUNCTIONS)
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
KEYWORDS = ("and", "or", "not", "true", "false")


class ExpressionError(ConfigError):
    """An expression that cannot be parsed or breaks a limit; `position` is the 0-based offset
    of the character where the problem is (the message gives it 1-based, as a column)."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(f"column {position + 1}: {message}")
        self.position = position
        self.reason = message


# --- the syntax tree ------------------------------------------------------------------------------

Kind: TypeAlias = Literal["number", "truth"]


@dataclass(frozen=True)
class Number:
    value: float
    position: int


@dataclass(frozen=True)
class Truth:
    value: bool
    position: int


@dataclass(frozen=True)
class Last:
    signal: str
    position: int


@dataclass(frozen=True)
class Changed:
    signal: str
    position: int


@dataclass(frozen=True)
class Window:
    function: Literal["min", "max", "avg"]
    signal: str
    window_s: float
    position: int


@dataclass(frozen=True)
class Negate:
    operand: Node
    position: int


@dataclass(frozen=True)
class Not:
    operand: Node
    position: int


@dataclass(frozen=True)
class Arithmetic:
    operator: Literal["+", "-", "*", "/"]
    left: Node
    right: Node
    position: int


@dataclass(frozen=True)
class Comparison:
    operator: Literal["<", "<=", ">", ">=", "==", "!="]
    left: Node
    right: Node
    position: int


@dataclass(frozen=True)
class Logic:
    operator: Literal["and", "or"]
    left: Node
    right: Node
    position: int


Node: TypeAlias = Number | Truth | Last | Changed | Window | Negate | Not | Arithmetic | Comparison | Logic


@dataclass(frozen=True)
class Expression:
    """A parsed condition: its text, its tree, the signals it reads and its longest window."""

    text: str
    root: Node
    signals: frozenset[str]
    window_s: float  # the longest window it looks back over (0 when it has none)
    nodes: int


# --- tokens ---------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<operator><=|>=|==|!=|[<>+\-*/(),])
    """,
    re.VERBOSE | re.ASCII,
)


@dataclass(frozen=True)
class _Token:
    kind: Literal["number", "name", "operator", "end"]
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise ExpressionError(f"unexpected character {text[at]!r}", position=at)
        kind = match.lastgroup
        if kind != "space":
            if (
                kind == "number"
                and match.end() < len(text)
                and (text[match.end()].isalnum() or text[match.end()] in "_.")
            ):
                raise ExpressionError(f"malformed number {text[at : match.end() + 1]!r}", position=at)
            found.append(_Token(kind, match.group(), at))  # type: ignore[arg-type]
        at = match.end()
    found.append(_Token("end", "", len(text)))
    return found


def _describe(token: _Token) -> str:
    return "the end of the expression" if token.kind == "end" else repr(token.text)


# --- the parser -----------------------------------------------------------------------------------


@dataclass
class _Parser:
    text: str
    tokens: list[_Token]
    known: Collection[str] | None
    at: int = 0
    depth: int = 0
    nodes: int = 0
    signals: set[str] = field(default_factory=set)
    window_s: float = 0.0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def advance(self) -> _Token:
        token = self.tokens[self.at]
        if token.kind != "end":
            self.at += 1
        return token

    def expect(self, text: str, what: str) -> _Token:
        token = self.token
        if token.text != text or token.kind not in ("operator", "name"):
            raise ExpressionError(f"expected {what}, found {_describe(token)}", position=token.position)
        return self.advance()

    def node(self, made: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ExpressionError(f"expression has more than {MAX_NODES} parts", position=made.position)
        return made

    def nested(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nests deeper than {MAX_DEPTH} levels", position=position)

    # each rule returns its node and the kind of value it gives

    def logic(self, operator: Literal["and", "or"]) -> tuple[Node, Kind]:
        lower = self.conjunction if operator == "or" else self.negation
        left, kind = lower()
        while self.token.kind == "name" and self.token.text == operator:
            token = self.advance()
            _require(left, kind, "truth", f"'{operator}'")
            right, right_kind = lower()
            _require(right, right_kind, "truth", f"'{operator}'")
            left, kind = self.node(Logic(operator, left, right, token.position)), "truth"
        return left, kind

    def disjunction(self) -> tuple[Node, Kind]:
        return self.logic("or")

    def conjunction(self) -> tuple[Node, Kind]:
        return self.logic("and")

    def negation(self) -> tuple[Node, Kind]:
        if self.token.kind == "name" and self.token.text == "not":
            token = self.advance()
            self.nested(token.position)
            operand, kind = self.negation()
            self.depth -= 1
            _require(operand, kind, "truth", "'not'")
            return self.node(Not(operand, token.position)), "truth"
        return self.comparison()

    def comparison(self) -> tuple[Node, Kind]:
        left, kind = self.sum()
        if self.token.kind == "operator" and self.token.text in COMPARISONS:
            token = self.advance()
            right, right_kind = self.sum()
            if token.text in ("==", "!=") and kind == right_kind:
                pass
            else:
                _require(left, kind, "number", repr(token.text))
                _require(right, right_kind, "number", repr(token.text))
            if self.token.kind == "operator" and self.token.text in COMPARISONS:
                raise ExpressionError(
                    "comparisons do not chain: join them with 'and'", position=self.token.position
                )
            operator: Literal["<", "<=", ">", ">=", "==", "!="] = token.text  # type: ignore[assignment]
            return self.node(Comparison(operator, left, right, token.position)), "truth"
        return left, kind

    def sum(self) -> tuple[Node, Kind]:
        left, kind = self.product()
        while self.token.kind == "operator" and self.token.text in ("+", "-"):
            token = self.advance()
            right, right_kind = self.product()
            left = self.arithmetic(token, left, kind, right, right_kind)
            kind = "number"
        return left, kind

    def product(self) -> tuple[Node, Kind]:
        left, kind = self.unary()
        while self.token.kind == "operator" and self.token.text in ("*", "/"):
            token = self.advance()
            right, right_kind = self.unary()
            left = self.arithmetic(token, left, kind, right, right_kind)
            kind = "number"
        return left, kind

    def arithmetic(self, token: _Token, left: Node, kind: Kind, right: Node, right_kind: Kind) -> Node:
        _require(left, kind, "number", repr(token.text))
        _require(right, right_kind, "number", repr(token.text))
        operator: Literal["+", "-", "*", "/"] = token.text  # type: ignore[assignment]
        return self.node(Arithmetic(operator, left, right, token.position))

    def unary(self) -> tuple[Node, Kind]:
        if self.token.kind == "operator" and self.token.text == "-":
            token = self.advance()
            self.nested(token.position)
            operand, kind = self.unary()
            self.depth -= 1
            _require(operand, kind, "number", "'-'")
            return self.node(Negate(operand, token.position)), "number"
        return self.atom()

    def atom(self) -> tuple[Node, Kind]:
        token = self.token
        if token.kind == "number":
            self.advance()
            return self.node(Number(_number(token), token.position)), "number"
        if token.kind == "operator" and token.text == "(":
            self.advance()
            self.nested(token.position)
            inner, kind = self.disjunction()
            self.depth -= 1
            self.expect(")", "')'")
            return inner, kind
        if token.kind == "name":
            if token.text in ("true", "false"):
                self.advance()
                return self.node(Truth(token.text == "true", token.position)), "truth"
            if token.text in ("and", "or", "not"):
                raise ExpressionError(f"expected a value, found {token.text!r}", position=token.position)
            self.advance()
            if self.token.kind == "operator" and self.token.text == "(":
                return self.call(token)
            return self.node(Last(self.signal(token), token.position)), "number"
        raise ExpressionError(f"expected a value, found {_describe(token)}", position=token.position)

    def call(self, name: _Token) -> tuple[Node, Kind]:
        if name.text not in FUNCTIONS:
            raise ExpressionError(
                f"unknown function {name.text!r} (known: {', '.join(FUNCTIONS)})", position=name.position
            )
        self.advance()  # "("
        argument = self.token
        if argument.kind != "name" or argument.text in KEYWORDS or argument.text in FUNCTIONS:
            raise ExpressionError(
                f"{name.text}() takes a signal name, found {_describe(argument)}", position=argument.position
            )
        self.advance()
        signal = self.signal(argument)
        if name.text in WINDOW_FUNCTIONS:
            self.expect(",", f"',' and a window in seconds after {name.text}()'s signal")
            window = self.token
            if window.kind != "number":
                raise ExpressionError(
                    f"{name.text}()'s window must be a number of seconds, found {_describe(window)}",
                    position=window.position,
                )
            self.advance()
            window_s = _number(window)
            if not 0 < window_s <= MAX_WINDOW_S:
                raise ExpressionError(
                    f"window of {window.text} s is outside (0, {MAX_WINDOW_S:g}] seconds",
                    position=window.position,
                )
            self.expect(")", f"')' to close {name.text}(")
            self.window_s = max(self.window_s, window_s)
            function: Literal["min", "max", "avg"] = name.text  # type: ignore[assignment]
            return self.node(Window(function, signal, window_s, name.position)), "number"
        self.expect(")", f"')' to close {name.text}(")
        if name.text == "changed":
            return self.node(Changed(signal, name.position)), "truth"
        return self.node(Last(signal, name.position)), "number"

    def signal(self, token: _Token) -> str:
        if token.text in FUNCTIONS:
            raise ExpressionError(
                f"{token.text} is a function: write {token.text}(...)", position=token.position
            )
        if self.known is not None and token.text not in self.known:
            raise ExpressionError(f"unknown signal {token.text!r}", position=token.position)
        self.signals.add(token.text)
        if len(self.signals) > MAX_SIGNALS:
            raise ExpressionError(
                f"expression reads more than {MAX_SIGNALS} signals", position=token.position
            )
        return token.text


def _number(token: _Token) -> float:
    value = float(token.text)
    if not math.isfinite(value):
        raise ExpressionError(f"number {token.text[:20]!r} is out of range", position=token.position)
    return value


def _require(node: Node, kind: Kind, wanted: Kind, operator: str) -> None:
    if kind != wanted:
        what = "a number" if wanted == "number" else "a truth value (a comparison, changed(), true or false)"
        raise ExpressionError(f"{operator} needs {what} here", position=node.position)


def parse_expression(text: str, *, signals: Collection[str] | None = None) -> Expression:
    """The condition in `text`, its signals checked against `signals` (the catalog's paths) when
    given; ExpressionError, with the position of the fault, for anything else."""
    if len(text) > MAX_TEXT_CHARS:
        raise ExpressionError(
            f"expression is longer than {MAX_TEXT_CHARS} characters", position=MAX_TEXT_CHARS
        )
    if not text.strip():
        raise ExpressionError("empty expression", position=0)
    parser = _Parser(text, _tokens(text), signals)
    root, kind = parser.disjunction()
    if parser.token.kind != "end":
        raise ExpressionError(
            f"expected an operator or the end, found {_describe(parser.token)}",
            position=parser.token.position,
        )
    if kind != "truth":
        raise ExpressionError(
            "a condition must be true or false: compare the value, e.g. '... > 0'", position=root.position
        )
    return Expression(text, root, frozenset(parser.signals), parser.window_s, parser.nodes)


# --- evaluation -----------------------------------------------------------------------------------


class History:
    """The recent samples of some signals, (time_s, value) in time order, each signal's kept
    to the last `window_s` seconds (but always its last two samples, for last() and changed())
    and at most `max_samples`."""

    def __init__(self, *, signals: Iterable[str], window_s: float, max_samples: int = MAX_SAMPLES) -> None:
        if not (math.isfinite(window_s) and window_s >= 0):
            raise ConfigError(f"history window must be a finite number of seconds >= 0, not {window_s}")
        if max_samples < 2:
            raise ConfigError(f"history must keep at least 2 samples a signal, not {max_samples}")
        self.window_s = window_s
        self._samples: dict[str, deque[tuple[float, float]]] = {
            name: deque(maxlen=max_samples) for name in signals
        }

    @property
    def signals(self) -> frozenset[str]:
        return frozenset(self._samples)

    def add(self, signal: str, time_s: float, value: float) -> None:
        """Keep a sample of a signal the history follows (others are ignored). A sample older than
        the signal's last one is dropped: the stream is in time order."""
        samples = self._samples.get(signal)
        if samples is None or not math.isfinite(value) or not math.isfinite(time_s):
            return
        if samples and time_s < samples[-1][0]:
            return
        samples.append((time_s, value))
        horizon = time_s - self.window_s
        while len(samples) > 2 and samples[0][0] < horizon:
            samples.popleft()

    def samples(self, signal: str) -> Iterable[tuple[float, float]]:
        return self._samples.get(signal, ())

    def last(self, signal: str) -> float | None:
        samples = self._samples.get(signal)
        return samples[-1][1] if samples else None

    def changed(self, signal: str) -> bool:
        samples = self._samples.get(signal)
        return samples is not None and len(samples) >= 2 and samples[-1][1] != samples[-2][1]

    def window(self, signal: str, now_s: float, window_s: float) -> list[float]:
        start = now_s - window_s
        return [value for time_s, value in self._samples.get(signal, ()) if start <= time_s <= now_s]


Value: TypeAlias = float | bool | None


def evaluate(expression: Expression, history: History, now_s: float) -> bool:
    """Whether the condition holds at `now_s` on the samples in `history` (unknown counts as
    false)."""
    return _value(expression.root, history, now_s) is True


def value_of(node: Node, history: History, now_s: float) -> Value:
    """The value of any node: a number, a truth value, or None when unknown."""
    return _value(node, history, now_s)


def _value(node: Node, history: History, now_s: float) -> Value:
    if isinstance(node, Number | Truth):
        return node.value
    if isinstance(node, Last):
        return history.last(node.signal)
    if isinstance(node, Changed):
        return history.changed(node.signal)
    if isinstance(node, Window):
        values = history.window(node.signal, now_s, node.window_s)
        if not values:
            return None
        if node.function == "min":
            return min(values)
        if node.function == "max":
            return max(values)
        return _finite(math.fsum(values) / len(values))
    if isinstance(node, Negate):
        operand = _value(node.operand, history, now_s)
        return None if operand is None else -operand
    if isinstance(node, Not):
        operand = _value(node.operand, history, now_s)
        return None if operand is None else not operand
    if isinstance(node, Logic):
        left = _value(node.left, history, now_s)
        if node.operator == "and" and left is False:
            return False
        if node.operator == "or" and left is True:
            return True
        right = _value(node.right, history, now_s)
        if node.operator == "and":
            return False if right is False else (None if left is None or right is None else True)
        return True if right is True else (None if left is None or right is None else False)
    left = _value(node.left, history, now_s)
    right = _value(node.right, history, now_s)
    if left is None or right is None:
        return None
    if isinstance(node, Comparison):
        return _COMPARE[node.operator](left, right)
    if node.operator == "/":
        return None if right == 0 else _finite(left / right)
    return _finite(_ARITHMETIC[node.operator](left, right))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": ops.lt,
    "<=": ops.le,
    ">": ops.gt,
    ">=": ops.ge,
    "==": ops.eq,
    "!=": ops.ne,
}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {"+": ops.add, "-": ops.sub, "*": ops.mul}
