"""tau2-bench's ``calculate`` tool, reproduced byte for byte without ``eval``.

The reference (tau2-bench, run under CPython 3.12.1 for our conformance vectors) is::

    if not all(char in "0123456789+-*/(). " for char in expression):
        raise ValueError("Invalid characters in expression")
    return str(round(float(eval(expression, {"__builtins__": None}, {})), 2))

``eval`` on model output can hang the process (``9**9**9**9``), so this module parses
the expression itself and evaluates it with bounded work. The operations themselves are
Python's own (``operator.add`` on the same int/float/complex/tuple/Ellipsis objects the
reference builds), so arithmetic results and runtime error texts are CPython's by
construction. What has to be imitated is the front end: the tokenizer, the PEG parser's
choice among SyntaxError messages, its stack limit, and the compiler's recursion limit.
Failures become ``ToolError(str(the exception the reference raises))``.

Deliberate deviations, all on inputs the reference could not finish in reasonable time
or memory: int ``*``/``**`` results above ``_MAX_BITS`` bits and expressions doing more
than ``_MAX_WORK`` bits of big-int work are refused with ``"result too large"``; nested
``(2**(2**(...`` more than ~25 deep, which CPython's parser takes exponential time over,
is evaluated normally.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from writ_async.errors import ToolError

_ALLOWED = "0123456789+-*/(). "
_MAX_BITS = 100_000  # no int intermediate may exceed this; float() caps results at 1024 bits
_MAX_WORK = 20_000_000  # total bits of big-int operands processed per expression
_TOO_LARGE = "result too large"

# Front-end limits measured on CPython 3.12.1 (same on 3.11.7 except where noted).
_MAX_NESTING = 200  # tokenizer MAXLEVEL: the 201st open '(' is a SyntaxError
_MAX_INT_DIGITS = 4300  # sys.int_info.default_max_str_digits, enforced on int literals
# The PEG parser raises MemoryError when its rule depth reaches 6000. Depth is modelled as
# the cost of the nesting path to an operand: unary 1, '**' 2, group '(' 28, call '(' 24,
# call '(*'/'(**' 27; the rules above the outermost operand use the rest of the 6000.
_PARSER_STACK = 5975
_GROUP_COST, _CALL_COST, _STAR_COST = 28, 24, 3
# The compiler's AST passes raise RecursionError at this expression-node depth (operators,
# calls and Starred count, keywords do not). CPython derives it from the C stack already
# in use when eval runs, so the reference's exact value may sit a few dozen lower.
_MAX_AST_DEPTH = 2997
_PARSER_OVERFLOW = "Parser stack overflowed - Python source too complex to parse"  # 3.11: ""
_COMPILE_RECURSION = "maximum recursion depth exceeded during compilation"
_COMMA = "invalid syntax. Perhaps you forgot a comma?"

_TOKEN = re.compile(r"(\d+(?:\.\d*)?|\.\d+)|(\.\.\.|\*\*|//|[-+*/().])")
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "/": operator.truediv, "//": operator.floordiv, "**": operator.pow,
}
_UNARY: dict[str, Callable[[Any], Any]] = {"u-": operator.neg, "u+": operator.pos}
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "u-": 3, "u+": 3, "**": 4}
_OPEN_COST = {"u-": 1, "u+": 1, "**": 2}  # parser depth added while inside the operand

Token = tuple[str, Any]  # (kind, payload); kinds: num ... ( ) + - * ** / // . end err
Item = tuple[str, Any]  # RPN: ("v", value) ("u", op) ("b", op) ("c", star or "") ("c0", None)


class _Frame:
    """An open '(' on the operator stack: a group or a call's argument list."""

    __slots__ = ("call", "cost", "star")

    def __init__(self, call: bool, star: str, cost: int) -> None:
        self.call, self.star, self.cost = call, star, cost


def calculate(expression: object) -> str:
    """The reference tool's result string, or ToolError carrying its exception text."""
    try:  # iterate exactly as the reference does: its TypeErrors are the messages
        allowed = all(char in _ALLOWED for char in iter(expression))  # type: ignore[call-overload]
    except TypeError as exc:
        raise ToolError(str(exc)) from None
    if not allowed:
        raise ToolError("Invalid characters in expression")
    if isinstance(expression, bytes) and not expression:
        expression = ""  # eval(b"") compiles like eval("")
    if not isinstance(expression, str):  # e.g. a list of digit strings passes the check
        raise ToolError("eval() arg 1 must be a string, bytes or code object")
    tokens = _tokenize(expression)
    rpn = _parse(tokens)
    if _ast_depth(rpn) >= _MAX_AST_DEPTH:
        raise ToolError(_COMPILE_RECURSION)
    try:
        return str(round(float(_evaluate(rpn)), 2))
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise ToolError(str(exc)) from None


def _syntax(tokens: list[Token], message: str, line: int = 1) -> ToolError:
    """A SyntaxError's text; a tokenizer error anywhere in the source takes priority.

    CPython re-tokenizes the rest of the source after a parser error and lets tokenizer
    errors win; ``tokens`` ends in an "err" token exactly when the source has one.
    """
    kind, payload = tokens[-1]
    if kind == "err":
        message, line = payload, 1
    return ToolError(f"{message} (<string>, line {line})")


def _tokenize(source: str) -> list[Token]:
    """CPython's tokens for the allowed characters, cut at the first tokenizer error."""
    tokens: list[Token] = []
    level = 0
    for match in _TOKEN.finditer(source):
        number, op = match.groups()
        if number is not None:
            if "." not in number and number[0] == "0" and number.strip("0"):
                message = ("leading zeros in decimal integer literals are not permitted; "
                           "use an 0o prefix for octal integers")
                tokens.append(("err", message))
                return tokens
            tokens.append(("num", number))
            continue
        if op == "(":
            if level >= _MAX_NESTING:
                tokens.append(("err", "too many nested parentheses"))
                return tokens
            level += 1
        elif op == ")":
            if level == 0:
                tokens.append(("err", "unmatched ')'"))
                return tokens
            level -= 1
        tokens.append((op, None))
    tokens.append(("end", level))  # payload: parentheses still open at end of input
    return tokens


def _literal(tokens: list[Token], text: str) -> int | float:
    if "." in text:
        return float(text)  # same correctly rounded conversion CPython's parser uses
    if text[0] == "0":
        return 0  # all zeros: the tokenizer rejected anything else
    if len(text) > _MAX_INT_DIGITS:
        raise _syntax(tokens, (
            f"Exceeds the limit ({_MAX_INT_DIGITS} digits) for integer string conversion: "
            f"value has {len(text)} digits; use sys.set_int_max_str_digits() to increase "
            "the limit - Consider hexadecimal for huge integer literals to avoid decimal "
            "conversion limits."))
    return int(text)


def _parse(tokens: list[Token], start: int = 0, probe: bool = False) -> Any:
    """Shunting-yard parse into RPN, iterative so no input depth reaches Python's stack.

    With ``probe`` it imitates CPython's second, error-reporting pass re-reading an
    expression that starts at ``start`` and returns the index where that expression
    ends; only fetching the end of input with '(' still open matters there.
    """
    out: list[Item] = []
    ops: list[str | _Frame] = []
    cost = 0  # modelled parser depth at the current position
    frames = 0
    operand = True  # expecting an operand (else an operator)
    i = start
    while True:
        if operand and not probe and cost >= _PARSER_STACK:  # before fetching the token
            raise ToolError(_PARSER_OVERFLOW)
        kind, payload = tokens[i]
        if kind == "err":
            raise _syntax(tokens, payload)
        if kind == "end" and payload:  # the parser fetched EOF inside parentheses
            raise _syntax(tokens, "'(' was never closed")
        if operand:
            if kind in ("num", "..."):
                value = _literal(tokens, payload) if kind == "num" else ...
                out.append(("v", value))
                operand = False
            elif kind in ("+", "-"):
                ops.append("u" + kind)
                cost += 1
            elif kind == "(":
                star = tokens[i + 1][0] if tokens[i + 1][0] in ("*", "**") else ""
                if probe and star == "**":  # only the invalid_group rule reads "(**x)"
                    return i + 1
                ops.append(_Frame(False, star, cost))
                cost += _GROUP_COST
                frames += 1
                i += bool(star)
            elif kind == ")" and tokens[i - 1][0] == "(":  # "()": empty tuple or no args
                frame = ops.pop()
                assert isinstance(frame, _Frame)
                cost, frames, operand = frame.cost, frames - 1, False
                out.append(("c0", None) if frame.call else ("v", ()))
            else:
                return i if probe else _fail(tokens, i, False, frames)
            i += 1
            continue
        if kind in ("+", "-", "*", "/", "//", "**"):
            if kind != "**":  # left associative: pop everything binding at least as tight
                prec = _PREC[kind]
                while ops and isinstance(top := ops[-1], str) and _PREC[top] >= prec:
                    cost -= _OPEN_COST.get(top, 0)
                    out.append(_op_item(ops.pop()))  # type: ignore[arg-type]
            ops.append(kind)
            cost += _OPEN_COST.get(kind, 0)
            operand = True
        elif kind == "(":  # a call: the operand just read is the callee
            star = tokens[i + 1][0] if tokens[i + 1][0] in ("*", "**") else ""
            ops.append(_Frame(True, star, cost))
            cost += _CALL_COST + (_STAR_COST if star else 0)
            frames += 1
            i += bool(star)
            operand = True
        elif kind == ")":
            if frames == 0:
                return i  # only a probe gets here: the tokenizer rejects unmatched ')'
            while isinstance(top := ops.pop(), str):
                out.append(_op_item(top))
            cost, frames = top.cost, frames - 1
            if top.call:
                out.append(("c", top.star))
            elif top.star:  # CPython's invalid_group rule: "(*x)" / "(**x)"
                if probe:
                    return i
                double = "double " if top.star == "**" else ""
                raise _syntax(tokens, f"cannot use {double}starred expression here")
        elif kind == "end":
            if probe:
                return i
            out.extend(_op_item(top) for top in reversed(ops) if isinstance(top, str))
            return out  # no frames are left: the tokenizer counted the parentheses
        else:  # a number or '...' right after an operand, or '.' (attribute access)
            if kind == ".":  # the parser fetches the token after '.', looking for a name
                follower, open_parens = tokens[i + 1]
                if follower == "err" or (follower == "end" and open_parens):
                    _parse(tokens, i + 1, probe=True)  # raises the right error
            return i if probe else _fail(tokens, i, kind != ".", frames)
        i += 1


def _op_item(op: str) -> Item:
    return ("u" if op[0] == "u" else "b", op)


def _fail(tokens: list[Token], at: int, juxtaposed: bool, frames: int) -> Any:
    """Raise the SyntaxError CPython reports when its first pass fails at ``at``."""
    if tokens[at][0] == "end":
        raise _syntax(tokens, "invalid syntax", 0 if at == 0 else 1)
    if juxtaposed:
        # The second pass retries "expression expression" (rule invalid_expression): it
        # reads the second expression in full, which may fetch an unclosed EOF, and only
        # suggests a comma inside parentheses.
        _parse(tokens, at, probe=True)
        raise _syntax(tokens, _COMMA if frames else "invalid syntax")
    raise _syntax(tokens, "invalid syntax")


def _ast_depth(rpn: list[Item]) -> int:
    """Depth of the expression tree CPython's compiler walks recursively."""
    depths: list[int] = []
    for tag, arg in rpn:
        if tag == "v":
            depths.append(1)
        elif tag in ("u", "c0"):
            depths[-1] += 1
        else:  # binary operator or call with an argument ("*x" adds a Starred node)
            right = depths.pop() + (arg == "*")
            depths[-1] = max(depths[-1], right) + 1
    return depths[0]


def _evaluate(rpn: list[Item]) -> Any:
    """Run the RPN with Python's own operators, refusing int blow-ups beforehand."""
    stack: list[Any] = []
    work = 0
    for tag, arg in rpn:
        if tag == "v":
            stack.append(arg)
        elif tag == "u":
            stack[-1] = _UNARY[arg](stack[-1])
        elif tag == "b":
            right = stack.pop()
            left = stack[-1]
            if type(left) is int and type(right) is int:
                work += _check_int_op(arg, left, right)
                if work > _MAX_WORK:
                    raise ToolError(_TOO_LARGE)
            stack[-1] = _BINARY[arg](left, right)
        elif tag == "c0":
            _call(stack[-1], None, "")
        else:
            argument = stack.pop()
            _call(stack[-1], argument, arg)
    return stack[0]


def _check_int_op(op: str, left: int, right: int) -> int:
    """The big-int work ``left op right`` costs; ToolError if its result is too large."""
    bits = left.bit_length() + right.bit_length()
    if op == "*" and left and right and bits > _MAX_BITS:
        raise ToolError(_TOO_LARGE)
    if op == "**" and right > 0 and abs(left) > 1:
        # |left| >= 2, so the result has at least `right` bits; log2 for the estimate
        if right > _MAX_BITS or right * math.log2(abs(left)) > _MAX_BITS:
            raise ToolError(_TOO_LARGE)
        bits += int(right * math.log2(abs(left)))
    return bits if bits > 4096 else 0  # machine-sized work is not worth counting


def _call(func: Any, argument: Any, star: str) -> None:
    """Call a number, tuple or Ellipsis: always a TypeError, worded as CPython does."""
    if star == "*" and not isinstance(argument, tuple):  # only () is iterable here
        raise TypeError(f"{func} argument after * must be an iterable, "
                        f"not {type(argument).__name__}")
    if star == "**":  # nothing here is a mapping
        raise TypeError(f"{func} argument after ** must be a mapping, "
                        f"not {type(argument).__name__}")
    raise TypeError(f"'{type(func).__name__}' object is not callable")
