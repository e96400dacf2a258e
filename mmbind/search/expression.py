"""Embedding arithmetic: a small expression language over operands such as ``audio:rain.wav``,
``text:"a dog"``, ``id:images/12`` and ``vec:name`` (grammar in docs/arithmetic.md).

Hand-written tokenizer + recursive-descent parser -> AST; scalars are folded while parsing and
every node is typed (number or vector), so ``audio:a.wav * image:b.png`` or ``1 + text:x`` are
rejected with the column of the offending token. Evaluation resolves each operand through a
callback, l2-normalises it, combines with the weights and normalises the result (ImageBind's
recipe), so this module needs numpy only.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

MAX_DEPTH = 64  # nesting limit: deep input must give ArithSyntaxError, never RecursionError
MAX_LENGTH = 10_000  # characters; far beyond any real query, and it bounds the parser's work
_SHOWN_OF_TOO_LONG = 80  # characters of an over-long expression its error message shows
OPERAND_HELP = 'an operand (modality:path, text:"a phrase", id:collection/row, vec:name)'

_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_BARE_STOP = set(" \t\r\n\f\v()+*\"'")  # a bare value may hold '-', '/', ':' and '.


class ArithSyntaxError(ValueError):
    """A malformed expression. The message shows the expression with a caret under the column
    and says what was expected; ``position`` is the 0-based offset."""

    def __init__(self, expression: str, position: int, message: str):
        self.expression = expression
        self.position = position
        self.reason = message
        super().__init__(f"{message} at column {position + 1}\n{caret(expression, position)}")


def caret(expression: str, position: int) -> str:
    """The expression on one line with a caret under ``position`` (both indented two spaces)."""
    shown = "".join(" " if ch in "\t\r\n\f\v" else ch for ch in expression)
    return f"  {shown}\n  {' ' * position}^"


class ArithEvalError(ValueError):
    """An expression that parses but cannot be evaluated (an operand fails to resolve, operands
    of different dimensions, or a result that is the zero vector)."""


# --- tokens ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    kind: str  # "number", "operand", "op", "end"
    text: str
    pos: int
    value: Any = None  # float for numbers, (name, ref) for operands


def _read_quoted(expr: str, i: int) -> tuple[str, int]:
    quote = expr[i]
    j = i + 1
    out = []
    while j < len(expr):
        ch = expr[j]
        if ch == "\\" and j + 1 < len(expr) and expr[j + 1] in (quote, "\\"):
            out.append(expr[j + 1])
            j += 2
            continue
        if ch == quote:
            return "".join(out), j + 1
        out.append(ch)
        j += 1
    raise ArithSyntaxError(expr, i, f"unterminated string: expected a closing {quote}")


def _operand(expr: str, name: re.Match, tokens: list[Token]) -> Token:
    """The operand that starts with ``name`` (``name:value``); ``tokens`` are those before it,
    for the hint of an error."""
    i = name.start()
    j = name.end()
    if j >= len(expr) or expr[j] != ":":
        hint = ""
        if tokens and tokens[-1].kind == "operand" and tokens[-1].pos + len(tokens[-1].text) == i - 1:
            hint = f"; a value with spaces needs quotes, e.g. {tokens[-1].value[0]}:\"... {name.group()}\""
        else:  # a bare file path, e.g. /data/7.wav or 7.wav
            start = tokens[-1].pos if tokens and tokens[-1].text == "/" and tokens[-1].pos == i - 1 else i
            path = expr[start:].split()[0]
            if "/" in path or "." in path:
                hint = f"; a file needs its modality in front, e.g. audio:{path}"
        raise ArithSyntaxError(expr, j, f"expected ':' after {name.group()!r} "
                                        f"({OPERAND_HELP}){hint}")
    j += 1
    if j < len(expr) and expr[j] in "\"'":
        ref, end = _read_quoted(expr, j)
    else:
        end = j
        while end < len(expr) and expr[end] not in _BARE_STOP:
            end += 1
        ref = expr[j:end]
    if not ref:
        raise ArithSyntaxError(expr, j, f"expected a path, name or quoted string after "
                                        f"'{name.group()}:'")
    return Token("operand", expr[i:end], i, (name.group(), ref))


def tokenize(expr: str) -> list[Token]:
    """Split an expression into numbers, operands, operators and parentheses."""
    if not isinstance(expr, str):
        raise TypeError(f"expression must be a str, got {type(expr).__name__}")
    if len(expr) > MAX_LENGTH:
        raise ArithSyntaxError(expr[:_SHOWN_OF_TOO_LONG], 0, f"expression too long ({len(expr)} characters; at most {MAX_LENGTH})")
    tokens: list[Token] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "+-*/()":
            tokens.append(Token("op", ch, i))
            i += 1
            continue
        number = _NUMBER.match(expr, i)
        if number:
            text = number.group()
            value = float(text)
            if not math.isfinite(value):
                raise ArithSyntaxError(expr, i, f"number {text} is too large: expected a finite weight")
            tokens.append(Token("number", text, i, value))
            i = number.end()
            continue
        name = _NAME.match(expr, i)
        if name:
            tokens.append(_operand(expr, name, tokens))
            i = tokens[-1].pos + len(tokens[-1].text)
            continue
        if ch in "\"'":
            raise ArithSyntaxError(expr, i, f"a quoted string must follow a modality, e.g. text:{ch}...{ch}")
        raise ArithSyntaxError(expr, i, f"unexpected character {ch!r}: expected {OPERAND_HELP}, "
                                        "a number, an operator (+ - * /) or a parenthesis")
    tokens.append(Token("end", "", len(expr)))
    return tokens


# --- AST ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Number:
    value: float
    pos: int


@dataclass(frozen=True)
class Operand:
    kind: str  # a modality name, or "id" / "vec"
    ref: str
    pos: int

    def __str__(self) -> str:
        if any(c in _BARE_STOP for c in self.ref) or self.ref[:1] == "-":
            return f'{self.kind}:"' + self.ref.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{self.kind}:{self.ref}"


@dataclass(frozen=True)
class Scale:
    factor: float
    child: "Node"
    pos: int


@dataclass(frozen=True)
class BinOp:
    op: str  # "+" or "-"
    left: "Node"
    right: "Node"
    pos: int


Node = Union[Number, Operand, Scale, BinOp]


def _is_vector(node: Node) -> bool:
    return not isinstance(node, Number)


class _Parser:
    def __init__(self, expr: str):
        self.expr = expr
        self.tokens = tokenize(expr)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, token: Token, message: str) -> ArithSyntaxError:
        return ArithSyntaxError(self.expr, token.pos, message)

    def describe(self, token: Token) -> str:
        return "the end of the expression" if token.kind == "end" else repr(token.text)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error(self.tok, f"empty expression: expected {OPERAND_HELP}")
        node = self.expression()
        if self.tok.kind != "end":
            if self.tok.text == ")":
                raise self.error(self.tok, "unbalanced ')': no '(' to close")
            raise self.error(self.tok, f"expected an operator (+ - * /) before {self.describe(self.tok)}")
        if not _is_vector(node):
            raise ArithSyntaxError(self.expr, 0, f"the expression is a number: expected it to contain {OPERAND_HELP}")
        return node

    def take(self, operators: str) -> Token | None:
        """The current token if it is one of ``operators`` (then the parser steps past it)."""
        token = self.tok
        if token.kind == "op" and token.text in operators:
            self.i += 1
            return token
        return None

    def expression(self) -> Node:
        node = self.term()
        while (op_token := self.take("+-")) is not None:
            right = self.term()
            if _is_vector(node) != _is_vector(right):
                raise self.error(op_token, f"cannot {'add' if op_token.text == '+' else 'subtract'} a number "
                                           f"and a vector: expected a vector on both sides of {op_token.text!r}")
            if isinstance(node, Number) and isinstance(right, Number):
                value = node.value + right.value if op_token.text == "+" else node.value - right.value
                node = self.number(value, op_token, node.pos)
            else:
                node = BinOp(op_token.text, node, right, op_token.pos)
        return node

    def term(self) -> Node:
        node = self.unary()
        while (op_token := self.take("*/")) is not None:
            right = self.unary()
            if op_token.text == "*":
                if _is_vector(node) and _is_vector(right):
                    raise self.error(op_token, "cannot multiply two vectors: expected a number on one side of '*'")
                if isinstance(node, Number) and isinstance(right, Number):
                    node = self.number(node.value * right.value, op_token, node.pos)
                elif isinstance(node, Number):
                    node = Scale(node.value, right, node.pos)
                else:
                    node = Scale(right.value, node, node.pos)  # type: ignore[union-attr]
            else:
                if _is_vector(right):
                    raise self.error(op_token, "cannot divide by a vector: expected a number after '/'")
                if right.value == 0:  # type: ignore[union-attr]
                    raise self.error(op_token, "division by zero: expected a non-zero number after '/'")
                if isinstance(node, Number):
                    node = self.number(node.value / right.value, op_token, node.pos)  # type: ignore[union-attr]
                else:
                    node = Scale(1.0 / right.value, node, node.pos)  # type: ignore[union-attr]
        return node

    def number(self, value: float, token: Token, pos: int) -> Number:
        if not math.isfinite(value):
            raise self.error(token, "the weight overflows: expected a finite number")
        return Number(value, pos)

    def unary(self) -> Node:
        token = self.tok
        if token.kind == "op" and token.text in "+-":
            self.i += 1
            self.enter(token)
            child = self.unary()
            self.depth -= 1
            if token.text == "+":
                return child
            if isinstance(child, Number):
                return Number(-child.value, token.pos)
            return Scale(-1.0, child, token.pos)
        return self.primary()

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(token, f"nested too deeply: expected at most {MAX_DEPTH} levels")

    def primary(self) -> Node:
        token = self.tok
        if token.kind == "number":
            self.i += 1
            return Number(token.value, token.pos)
        if token.kind == "operand":
            self.i += 1
            kind, ref = token.value
            return Operand(kind, ref, token.pos)
        if token.kind == "op" and token.text == "(":
            self.i += 1
            self.enter(token)
            if self.tok.kind == "op" and self.tok.text == ")":
                raise self.error(self.tok, f"empty parentheses: expected {OPERAND_HELP} or a number")
            node = self.expression()
            self.depth -= 1
            if not (self.tok.kind == "op" and self.tok.text == ")"):
                raise self.error(self.tok, f"expected ')' to close the '(' at column {token.pos + 1}, "
                                           f"found {self.describe(self.tok)}")
            self.i += 1
            return node
        raise self.error(token, f"expected {OPERAND_HELP}, a number or '(', found {self.describe(token)}")


def parse(expression: str) -> Node:
    """Parse an expression into an AST whose value is a vector; raises ArithSyntaxError."""
    return _Parser(expression).parse()


def linear_terms(node: Node) -> list[tuple[float, Operand]]:
    """The expression as a weighted sum: [(weight, operand)], repeated operands merged, in order
    of first appearance."""
    weights: dict[tuple[str, str], float] = {}
    first: dict[tuple[str, str], Operand] = {}

    # Iterative: a long chain a + b + c + ... nests BinOps deeper than Python's recursion limit.
    stack: list[tuple[Node, float]] = [(node, 1.0)]
    while stack:
        n, w = stack.pop()
        if isinstance(n, Operand):
            key = (n.kind, n.ref)
            first.setdefault(key, n)
            weights[key] = weights.get(key, 0.0) + w
        elif isinstance(n, Scale):
            stack.append((n.child, w * n.factor))
        elif isinstance(n, BinOp):
            stack.append((n.right, w if n.op == "+" else -w))
            stack.append((n.left, w))
        else:  # a Number cannot sit in a vector expression; the parser guarantees it
            raise AssertionError(f"unexpected number node {n!r} in a vector expression")
    return [(weights[key], first[key]) for key in first]


def format_terms(terms: list[tuple[float, Operand]]) -> str:
    """Canonical text of a weighted sum, e.g. ``0.5*audio:rain.wav - 0.5*text:"a dog"``."""
    parts = []
    for i, (w, operand) in enumerate(terms):
        sign = "-" if w < 0 else "+"
        text = f"{abs(w):g}*{operand}"
        parts.append(("-" + text if sign == "-" else text) if i == 0 else f"{sign} {text}")
    return " ".join(parts)


Resolver = Callable[[str, str], Any]


def evaluate_expression(expression: str | Node, resolve: Resolver, normalize: bool = True) -> np.ndarray:
    """Evaluate an expression: ``resolve(kind, ref) -> vector`` for each operand (e.g.
    ``resolve("audio", "rain.wav")``); each operand is l2-normalised before weighting and the
    result is normalised again (unless ``normalize=False``). Returns float32 (D,)."""
    text = expression if isinstance(expression, str) else None
    node = parse(expression) if isinstance(expression, str) else expression
    total: np.ndarray | None = None
    for weight, operand in linear_terms(node):
        where = f"{operand}" if text is None else f"{operand} (column {operand.pos + 1})\n{caret(text, operand.pos)}\n"
        try:
            vector = resolve(operand.kind, operand.ref)
        except ArithEvalError:
            raise
        except Exception as error:
            raise ArithEvalError(f"cannot resolve {where}: {error}") from error
        if hasattr(vector, "detach"):
            vector = vector.detach().cpu().numpy()
        vector = np.asarray(vector, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(vector))
        if not math.isfinite(norm) or norm == 0.0:
            raise ArithEvalError(f"{where}: its vector is zero or not finite, so it cannot be normalised")
        vector = vector / norm
        if total is not None and vector.shape != total.shape:
            raise ArithEvalError(f"{where}: has {vector.shape[0]} dimensions, the operands before it "
                                 f"have {total.shape[0]}")
        total = weight * vector if total is None else total + weight * vector
    assert total is not None  # a vector expression has at least one operand
    if normalize:
        norm = float(np.linalg.norm(total))
        if norm < 1e-9:
            raise ArithEvalError(f"the expression {text or format_terms(linear_terms(node))!s} evaluates to "
                                 "the zero vector (its operands cancel out), so it has no direction to search")
        total = total / norm
    return total.astype(np.float32)


__all__ = [
    "ArithSyntaxError", "ArithEvalError", "caret", "Token", "Number", "Operand", "Scale", "BinOp", "Node",
    "tokenize", "parse", "linear_terms", "format_terms", "evaluate_expression",
]
