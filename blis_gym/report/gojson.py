"""JSON text in the exact shape the reference prints (Go's ``json.MarshalIndent``).

Floats use the shortest round-trip digits, positional between 1e-6 and 1e21
and exponent form outside it; integral floats print without ".0".
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any


def go_float(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"cannot encode {x!r} as JSON")
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    a = abs(x)
    if a < 1e-6 or a >= 1e21:
        mant, _, exp = repr(x).partition("e")
        sign = exp[0]
        digits = exp[1:].lstrip("0")
        if sign == "+" or len(digits) > 1:
            digits = digits.rjust(2, "0")
        return f"{mant}e{sign}{digits}"
    s = format(Decimal(repr(x)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _value(v: Any, indent: str, level: int) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        # Go escapes <, > and & in strings; ids and names never contain them.
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dict):
        if not v:
            return "{}"
        pad = indent * (level + 1)
        items = [f"{pad}{json.dumps(k)}: {_value(val, indent, level + 1)}" for k, val in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent * level + "}"
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        pad = indent * (level + 1)
        items = [pad + _value(x, indent, level + 1) for x in v]
        return "[\n" + ",\n".join(items) + "\n" + indent * level + "]"
    if v is None:
        return "null"
    raise TypeError(f"cannot encode {type(v).__name__}")


def dumps(obj: Any, indent: str = "  ") -> str:
    """Serialize like ``json.MarshalIndent(obj, "", indent)``; dicts keep insertion order."""
    return _value(obj, indent, 0)
