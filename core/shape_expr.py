"""ncnn's shape expressions (``src/expression.cpp``), as in Reshape's ``6="1w,1h,128"``.

An expression is a comma-separated list of prefix terms: ``/(0w,2)`` is blob 0's width divided by 2.
Tokens ``Nw Nh Nd Nc`` read the size of input blob ``N``; integers stay integers through ``+ - * //
max min`` and the unary integer operators, anything else is float32 arithmetic; each listed value is
truncated to an integer.  The list is in ncnn's order (w first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from ncnnc.core.errors import GraphError

_BLOB = re.compile(r"^[0-9][whdcn]$")
_INT_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
               "max": max, "min": min}
_FLOAT_UNARY = {"acos": math.acos, "acosh": math.acosh, "asin": math.asin, "asinh": math.asinh,
                "atan": math.atan, "atanh": math.atanh, "cos": math.cos, "cosh": math.cosh, "erf": math.erf,
                "exp": math.exp, "log": math.log, "log10": math.log10, "reciprocal": lambda a: 1.0 / a,
                "rsqrt": lambda a: 1.0 / math.sqrt(a), "sin": math.sin, "sinh": math.sinh, "sqrt": math.sqrt,
                "tan": math.tan, "tanh": math.tanh}
_FLOAT_BINARY = {"/": lambda a, b: a / b, "atan2": math.atan2, "fmod": math.fmod, "pow": math.pow,
                 "remainder": lambda a, b: math.fmod(a, b) + (b if a * b < 0 else 0),
                 "logaddexp": lambda a, b: math.log(math.exp(a) + math.exp(b))}
_INT_UNARY = {"abs": abs, "neg": lambda a: -a, "sign": lambda a: (a > 0) - (a < 0), "square": lambda a: a * a}
_ROUNDING = {"trunc": math.trunc, "ceil": math.ceil, "floor": math.floor, "round": round}
_BITWISE = {"and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
            "lshift": lambda a, b: a << b, "rshift": lambda a, b: a >> b}


def tokens(expr: str) -> list[str]:
    """The expression split at ``( ) ,``."""
    return [t for t in re.split(r"[(),]", expr) if t]


def blob_count(expr: str) -> int:
    """How many input blobs the expression reads (the highest ``N`` in ``Nw``-like tokens, plus one)."""
    return max((int(t[0]) + 1 for t in tokens(expr) if _BLOB.match(t)), default=0)


def _f32(x: float) -> float:
    return float(np.float32(x))


def _apply(t: str, stack: list[int | float]) -> int | float:
    a = stack.pop()
    if t in _INT_UNARY:
        return _INT_UNARY[t](a) if isinstance(a, int) else _f32(_INT_UNARY[t](a))
    if t in _ROUNDING:
        return a if isinstance(a, int) else int(_ROUNDING[t](a))
    if t in _FLOAT_UNARY:
        return _f32(_FLOAT_UNARY[t](float(a)))
    b = stack.pop()
    if t in _BITWISE:
        return _BITWISE[t](int(a), int(b))
    if t in _INT_BINARY:
        r = _INT_BINARY[t](a, b)
        return r if isinstance(a, int) and isinstance(b, int) else _f32(r)
    if t == "//":
        if isinstance(a, int) and isinstance(b, int):
            if b == 0:
                raise ZeroDivisionError("expression divides by zero")
            return int(a / b)  # C integer division truncates toward zero
        return _f32(math.floor(a / b))
    return _f32(_FLOAT_BINARY[t](float(a), float(b)))


def evaluate(expr: str, shapes: Sequence[tuple[int, ...]], where: str = "") -> list[int]:
    """The integer list an expression gives for input blobs of these numpy-order shapes (w first)."""
    stack: list[int | float] = []
    ops = set(_INT_UNARY) | set(_ROUNDING) | set(_FLOAT_UNARY) | set(_BITWISE) | set(_INT_BINARY) \
        | set(_FLOAT_BINARY) | {"//"}
    try:
        for t in reversed(tokens(expr)):
            if _BLOB.match(t):
                shape = shapes[int(t[0])]
                sizes = dict(zip({1: "w", 2: "hw", 3: "chw", 4: "cdhw"}[len(shape)], shape))
                stack.append(sizes.get(t[1], 1))  # an absent axis (and the batch n) is 1
            elif t in ops:
                stack.append(_apply(t, stack))
            else:
                value = float(t)
                stack.append(int(value) if value.is_integer() and re.fullmatch(r"[+-]?\d+", t) else _f32(value))
        return [int(v) for v in reversed(stack)]
    except (IndexError, ValueError, ZeroDivisionError, OverflowError) as e:
        raise GraphError(f"shape expression {expr!r} cannot be evaluated: {e}", where=where) from None
