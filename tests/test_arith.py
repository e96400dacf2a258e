"""The arithmetic language: tokenizer, parser (precedence, weights, parentheses, quoting),
error messages with a caret, evaluation with normalisation, and fuzzing of malformed input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmbind.search.expression import (
    ArithEvalError,
    ArithSyntaxError,
    BinOp,
    Operand,
    Scale,
    evaluate_expression,
    format_terms,
    linear_terms,
    parse,
    tokenize,
)


def terms(expression: str) -> list[tuple[float, str, str]]:
    return [(round(w, 9), op.kind, op.ref) for w, op in linear_terms(parse(expression))]


# --- parsing ---------------------------------------------------------------------------------
def test_single_operands_of_each_kind():
    assert terms("audio:rain.wav") == [(1.0, "audio", "rain.wav")]
    assert terms('text:"a phrase"') == [(1.0, "text", "a phrase")]
    assert terms("id:images/123") == [(1.0, "id", "images/123")]
    assert terms("id:images/#7") == [(1.0, "id", "images/#7")]
    assert terms("vec:centroid") == [(1.0, "vec", "centroid")]
    assert terms("image:dir/sub-dir/x-1.png") == [(1.0, "image", "dir/sub-dir/x-1.png")]


def test_weights_on_either_side_and_division():
    assert terms("0.5*audio:a.wav") == [(0.5, "audio", "a.wav")]
    assert terms("audio:a.wav * 0.25") == [(0.25, "audio", "a.wav")]
    assert terms("audio:a.wav / 4") == [(0.25, "audio", "a.wav")]
    assert terms("2 * 3 * audio:a.wav") == [(6.0, "audio", "a.wav")]
    assert terms("1e-1*audio:a") == [(0.1, "audio", "a")]
    assert terms(".5*audio:a") == [(0.5, "audio", "a")]


def test_precedence_multiplication_binds_tighter_than_addition():
    assert terms("0.5*audio:a + 0.5*image:b") == [(0.5, "audio", "a"), (0.5, "image", "b")]
    assert terms("audio:a - 2*image:b + text:c") == [(1.0, "audio", "a"), (-2.0, "image", "b"), (1.0, "text", "c")]
    # left associativity of '-': a - b - c is (a - b) - c
    assert terms("audio:a - image:b - text:c") == [(1.0, "audio", "a"), (-1.0, "image", "b"), (-1.0, "text", "c")]
    # scalar folding follows precedence: 1 + 2*3 = 7
    assert terms("(1 + 2*3) * audio:a") == [(7.0, "audio", "a")]


def test_parentheses_and_unary_minus():
    assert terms("0.5*(audio:a + image:b)") == [(0.5, "audio", "a"), (0.5, "image", "b")]
    assert terms("audio:a - (image:b - text:c)") == [(1.0, "audio", "a"), (-1.0, "image", "b"), (1.0, "text", "c")]
    assert terms("-audio:a") == [(-1.0, "audio", "a")]
    assert terms("-(audio:a + image:b)/2") == [(-0.5, "audio", "a"), (-0.5, "image", "b")]
    assert terms("--audio:a") == [(1.0, "audio", "a")]
    assert terms("2*-audio:a") == [(-2.0, "audio", "a")]
    assert terms("((((audio:a))))") == [(1.0, "audio", "a")]


def test_repeated_operands_are_merged():
    assert terms("audio:a + 0.5*audio:a - image:b") == [(1.5, "audio", "a"), (-1.0, "image", "b")]
    assert terms("audio:a - audio:a + image:b") == [(0.0, "audio", "a"), (1.0, "image", "b")]


def test_quoting():
    assert terms('image:"my file.png"') == [(1.0, "image", "my file.png")]
    assert terms("image:'my file.png'") == [(1.0, "image", "my file.png")]
    assert terms(r'text:"she said \"hi\""') == [(1.0, "text", 'she said "hi"')]
    assert terms(r"text:'it\'s'") == [(1.0, "text", "it's")]
    assert terms(r'text:"back\\slash"') == [(1.0, "text", "back\\slash")]
    assert terms('text:"a + b * (c)"') == [(1.0, "text", "a + b * (c)")]
    assert terms('0.5*text:"x"+0.5*text:"y"') == [(0.5, "text", "x"), (0.5, "text", "y")]
    # quoted operators are text, not operators; and a bare value stops at whitespace
    assert terms("audio:a.wav -image:b.png") == [(1.0, "audio", "a.wav"), (-1.0, "image", "b.png")]


def test_ast_shape():
    node = parse("0.5*audio:a - image:b")
    assert isinstance(node, BinOp) and node.op == "-"
    assert isinstance(node.left, Scale) and node.left.factor == 0.5
    assert node.left.child == Operand("audio", "a", 4)
    assert node.right.pos == 14


def test_format_terms_round_trips():
    for expression in ['0.5*audio:a.wav + 0.5*text:"a dog"', "-audio:x - 2*id:c/#3", 'image:"my file.png"/2',
                       r'text:"say \"x\"" - vec:v']:
        canonical = format_terms(linear_terms(parse(expression)))
        assert terms(canonical) == terms(expression), canonical


def test_tokens_record_positions():
    tokens = tokenize('0.5 * text:"a b" + id:c/1')
    assert [(t.kind, t.pos) for t in tokens] == [("number", 0), ("op", 4), ("operand", 6), ("op", 17),
                                                 ("operand", 19), ("end", 25)]


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("expression, column, expected", [
    ("", 1, "empty expression"),
    ("audio:a +", 10, "expected an operand"),
    ("audio:a + * image:b", 11, "expected an operand"),
    ("(audio:a", 9, "expected ')'"),
    ("audio:a)", 8, "unbalanced ')'"),
    ("audio:a image:b", 9, "expected an operator"),
    ("audio:a * image:b", 9, "cannot multiply two vectors"),
    ("audio:a / image:b", 9, "cannot divide by a vector"),
    ("1 + audio:a", 3, "cannot add a number and a vector"),
    ("audio:a / 0", 9, "division by zero"),
    ("3 * 4", 1, "the expression is a number"),
    ("audio", 6, "expected ':'"),
    ("audio:", 7, "expected a path"),
    ('text:"unterminated', 6, "unterminated string"),
    ("()", 2, "empty parentheses"),
    ("audio:a + ?", 11, "unexpected character '?'"),
    ('"quoted"', 1, "must follow a modality"),
    ("1e999*audio:a", 1, "too large"),
    ("1e200*1e200*audio:a", 6, "overflows"),
    ("/data/clips/7.wav", 6, "a file needs its modality in front, e.g. audio:/data/clips/7.wav"),
    ("0.5*seven.wav", 10, "a file needs its modality in front, e.g. audio:seven.wav"),
])
def test_syntax_errors_point_at_the_column(expression, column, expected):
    with pytest.raises(ArithSyntaxError) as info:
        parse(expression)
    error = info.value
    message = str(error)
    assert expected in message
    assert f"at column {column}" in message
    assert error.position == column - 1
    lines = message.splitlines()
    assert lines[1] == "  " + expression
    assert lines[2] == "  " + " " * (column - 1) + "^"
    assert isinstance(error, ValueError)


def test_deep_nesting_is_a_syntax_error_not_a_recursion_error():
    with pytest.raises(ArithSyntaxError, match="nested too deeply"):
        parse("(" * 2000 + "audio:a" + ")" * 2000)
    with pytest.raises(ArithSyntaxError, match="nested too deeply"):
        parse("-" * 2000 + "audio:a")
    with pytest.raises(ArithSyntaxError, match="too long"):
        parse("audio:a + " * 2000)
    # a long flat chain is fine (the evaluation walks it without recursion)
    long_chain = " + ".join(f"v:{i:x}" for i in range(1100))  # deeper than Python's recursion limit
    assert len(linear_terms(parse(long_chain))) == 1100


def test_newlines_keep_the_caret_aligned():
    with pytest.raises(ArithSyntaxError) as info:
        parse("audio:a +\n  * image:b")
    lines = str(info.value).splitlines()
    assert lines[1] == "  audio:a +   * image:b"
    assert lines[2].index("^") == lines[1].index("*")


# --- fuzzing ---------------------------------------------------------------------------------
_PIECES = ["audio:a.wav", "text:\"x y\"", "id:c/1", "vec:v", "0.5", "2", "1e3", "+", "-", "*", "/", "(", ")",
           " ", "\"", "'", ":", "audio", "#", "\\", "\n", "1e999", ".", "e", "0"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=14))
def test_random_token_soup_parses_or_raises_a_clean_syntax_error(pieces):
    expression = "".join(pieces)
    try:
        node = parse(expression)
    except ArithSyntaxError as error:
        assert 0 <= error.position <= len(expression)
        assert str(error).splitlines()[-1].strip() == "^"
    else:
        assert linear_terms(node)  # a parsed expression always has an operand


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_never_raises_another_exception_type(text):
    try:
        parse(text)
    except ArithSyntaxError:
        pass


_VALID = ["audio:a.wav", "0.5*image:b.png", "(text:\"c\" - id:x/1)", "-vec:v", "audio:a.wav / 2"]
_BREAK = [
    lambda v: v + " +", lambda v: v + " -", lambda v: v + " *", lambda v: v + " /", lambda v: v + " (",
    lambda v: v + " )", lambda v: "(" + v, lambda v: v + " audio:z", lambda v: v + " * " + v,
    lambda v: v + " / " + v, lambda v: "1 + " + v, lambda v: v + " - 2", lambda v: v + " audio:",
    lambda v: v + ' text:"open', lambda v: v + " ()", lambda v: "* " + v, lambda v: v + " : x",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_VALID), min_size=1, max_size=4), st.sampled_from(range(len(_BREAK))))
def test_broken_valid_expressions_raise_arith_syntax_error(parts, which):
    valid = " + ".join(parts)
    parse(valid)
    with pytest.raises(ArithSyntaxError):
        parse(_BREAK[which](valid))


# --- evaluation ------------------------------------------------------------------------------
def _resolver(table):
    calls = []

    def resolve(kind, ref):
        calls.append((kind, ref))
        return table[f"{kind}:{ref}"]

    resolve.calls = calls
    return resolve


def test_operands_are_normalised_before_weighting_and_the_result_after():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(8) * 5, rng.standard_normal(8) * 0.1
    resolve = _resolver({"audio:a": a, "image:b": b})
    got = evaluate_expression("0.5*audio:a + 0.5*image:b", resolve)
    unit = a / np.linalg.norm(a) + b / np.linalg.norm(b)
    np.testing.assert_allclose(got, unit / np.linalg.norm(unit), rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32 and abs(np.linalg.norm(got) - 1) < 1e-5
    # scaling an operand's raw vector changes nothing: each operand is normalised first
    resolve2 = _resolver({"audio:a": a * 1000, "image:b": b})
    np.testing.assert_allclose(evaluate_expression("0.5*audio:a + 0.5*image:b", resolve2), got, rtol=1e-5, atol=1e-6)
    # weights matter relative to each other
    skew = evaluate_expression("0.9*audio:a + 0.1*image:b", resolve)
    assert float(skew @ (a / np.linalg.norm(a))) > float(got @ (a / np.linalg.norm(a)))
    # without the final normalisation the raw weighted sum comes back
    raw = evaluate_expression("0.5*audio:a + 0.5*image:b", resolve, normalize=False)
    np.testing.assert_allclose(raw, 0.5 * unit, rtol=1e-5, atol=1e-6)


def test_each_distinct_operand_is_resolved_once():
    resolve = _resolver({"audio:a": np.ones(4), "image:b": np.arange(4.0) + 1})
    evaluate_expression("audio:a + audio:a - 0.5*image:b + (audio:a)", resolve)
    assert resolve.calls == [("audio", "a"), ("image", "b")]


def test_subtraction_direction():
    a, b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    v = evaluate_expression("audio:a - image:b", _resolver({"audio:a": a, "image:b": b}))
    np.testing.assert_allclose(v, [2**-0.5, -(2**-0.5), 0], atol=1e-6)


def test_evaluation_errors_name_the_operand():
    a = np.array([1.0, 0, 0])
    with pytest.raises(ArithEvalError, match="cancel out"):
        evaluate_expression("audio:a - audio:a", _resolver({"audio:a": a}))
    with pytest.raises(ArithEvalError, match="zero or not finite"):
        evaluate_expression("audio:a + image:z", _resolver({"audio:a": a, "image:z": np.zeros(3)}))
    with pytest.raises(ArithEvalError, match="has 4 dimensions, the operands before it have 3"):
        evaluate_expression("audio:a + image:b", _resolver({"audio:a": a, "image:b": np.ones(4)}))
    with pytest.raises(ArithEvalError) as info:
        evaluate_expression("audio:a + image:missing", _resolver({"audio:a": a}))
    assert "image:missing (column 11)" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


# --- the documentation ---------------------------------------------------------------------------
DOC = (__import__("pathlib").Path(__file__).parents[1] / "docs" / "arithmetic.md").read_text()


def test_documented_examples_mean_what_the_docs_say():
    import re

    block = re.search(r"Examples \(expression.*?```text\n(.*?)```", DOC, re.S).group(1)
    lines = block.strip().splitlines()
    assert len(lines) >= 5
    for line in lines:
        expression, meaning = (part.strip() for part in line.split("=>"))
        assert format_terms(linear_terms(parse(expression))) == meaning


def test_documented_error_message_is_the_real_one():
    import re

    shown = re.search(r"\$ mmbind arith store.h5 '(.*?)' -c audio\nError: (.*?)```", DOC, re.S)
    with pytest.raises(ArithSyntaxError) as info:
        parse(shown.group(1))
    assert str(info.value) == shown.group(2).rstrip("\n")
