"""Flag values read the way BLIS's Go code reads them, so we accept what BLIS accepts.

``parse_float`` follows ``strconv.ParseFloat``; ``name_value_pairs`` splits the
``"name:value,name:value"`` lists of ``--routing-scorers`` and ``--fitness-weights``.
"""

from __future__ import annotations

import math
import re

from .errors import ConfigError

# Characters Go's unicode.IsSpace accepts (str.strip() would also drop \x1c-\x1f).
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u2028\u2029\u202f\u205f\u3000"
)

# Number syntax of Go's strconv.ParseFloat: decimal or hex (hex needs a p-exponent),
# '_' allowed as a digit separator, plus inf/infinity (signed) and nan (unsigned).
# The look-aheads demand at least one mantissa digit.
_DEC = re.compile(r"[+-]?(?=[0-9_.]*[0-9])[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9][0-9_]*)?")
_HEX = re.compile(r"[+-]?0[xX](?=[0-9a-fA-F_.]*[0-9a-fA-F])[0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?[pP][+-]?[0-9][0-9_]*")
_INF = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)
_NAN = re.compile(r"nan", re.IGNORECASE)


def _separators_ok(text: str) -> bool:
    """Whether every '_' sits between two digits (a 0x prefix counts as a digit)."""
    body = text[1:] if text[:1] in "+-" else text
    hex_digits = body[:2].lower() == "0x"
    prev = "digit" if hex_digits else "start"
    for ch in body[2:] if hex_digits else body:
        if "0" <= ch <= "9" or (hex_digits and ch.lower() in "abcdef"):
            prev = "digit"
        elif ch == "_":
            if prev != "digit":
                return False
            prev = "_"
        elif prev == "_":
            return False
        else:
            prev = "other"
    return prev != "_"


def parse_float(text: str) -> float | None:
    """``text`` as a float64 under Go's ParseFloat syntax, or None if Go would reject it.

    Values too large for float64 come back as +/-inf (Go reports them as out of range).
    """
    if _NAN.fullmatch(text):
        return math.nan
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    is_hex = _HEX.fullmatch(text) is not None
    if not is_hex and _DEC.fullmatch(text) is None:
        return None
    if "_" in text and not _separators_ok(text):
        return None
    plain = text.replace("_", "")
    try:
        return float.fromhex(plain) if is_hex else float(plain)
    except OverflowError:
        return -math.inf if plain.startswith("-") else math.inf
    except ValueError:
        return None


def name_value_pairs(text: str, flag: str, form: str, example: str) -> list[tuple[str, str]]:
    """Split ``text`` on commas, then each entry on its first colon, trimming Go whitespace.

    Raises :class:`ConfigError` naming ``flag`` for an entry without a colon.
    """
    pairs = []
    for entry in text.split(","):
        entry = entry.strip(GO_SPACE)
        name, sep, value = entry.partition(":")
        if not sep:
            raise ConfigError(f"{flag}: entry {entry!r} is not {form} (e.g. {example})")
        pairs.append((name.strip(GO_SPACE), value.strip(GO_SPACE)))
    return pairs
