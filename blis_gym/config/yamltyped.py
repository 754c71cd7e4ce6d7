"""Typed, strict decoding of YAML into frozen dataclasses, with yaml.v3's rules.

BLIS reads its workload specs with Go's yaml.v3 and ``KnownFields(true)``. This
module decodes the same way from the document's nodes (not from PyYAML's
YAML 1.1 values), so a file means the same thing to both:

* plain scalars resolve as in yaml.v3 (YAML 1.2 core: ``yes`` is a string,
  ``010`` is octal, ``1_000`` is an int, ``1e3`` a float);
* a string field takes any scalar's text (``tenant_id: 7`` is ``"7"``);
* a number field takes ints and floats; an int field takes a whole float
  (``100.0``), and, stricter than yaml.v3, rejects a fractional one;
* a bool field also takes yaml.v3's YAML 1.1 spellings (``yes``, ``off``...);
* null or an absent key leaves the field's default;
* unknown and duplicate keys are errors.

Every error is one :class:`~blis_gym.errors.ConfigError` line naming the
file, the key path (``clients[1].arrival.cv``) and the line.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from typing import Any, NoReturn, Optional, Union

import yaml

from ..errors import ConfigError
from .yamlio import syntax_error

__all__ = ["decode", "field_names"]

_STR = "tag:yaml.org,2002:str"
_PLAIN = "!blis-plain"  # our marker for a plain scalar left for yaml.v3-style resolution
_MAX_I64 = (1 << 63) - 1
_MAX_U64 = (1 << 64) - 1
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_DOT_FLOAT = re.compile(r"^\.[0-9]+([eE][-+]?[0-9]+)?$")
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_SPECIAL_FLOATS = {
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
    **{s: math.inf for s in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{s: -math.inf for s in ("-.inf", "-.Inf", "-.INF")},
}
_BOOL_11 = {
    **{s: True for s in ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")},
    **{s: False for s in ("n", "N", "no", "No", "NO", "off", "Off", "OFF")},
}


class _NodeLoader(yaml.SafeLoader):
    """Composes nodes, leaving plain scalars unresolved for :func:`resolve_plain`."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


def _go_parse_int(text: str) -> Optional[int]:
    """Go's ``strconv.ParseInt(text, 0, 64)``-then-``ParseUint`` acceptance, as yaml.v3 tries it."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text[:1] == "-" else 1
    lower = body.lower()
    try:
        if lower.startswith("0x"):
            value = int(body[2:], 16)
        elif lower.startswith("0o"):
            value = int(body[2:], 8)
        elif lower.startswith("0b"):
            value = int(body[2:], 2)
        elif len(body) > 1 and body[0] == "0":
            value = int(body[1:], 8)
        else:
            if not body.isdigit():
                return None
            value = int(body)
    except ValueError:
        return None
    if not body or not body.replace("_", "").isalnum():
        return None
    value *= sign
    if -_MAX_I64 - 1 <= value <= _MAX_I64 or (sign > 0 and value <= _MAX_U64 and text[:1] != "+"):
        return value
    return None


def resolve_plain(text: str) -> tuple[str, Any]:
    """(kind, value) of a plain scalar, kind one of null, bool, int, float, str."""
    if text in _NULLS:
        return "null", None
    if text in _TRUE:
        return "bool", True
    if text in _FALSE:
        return "bool", False
    if text in _SPECIAL_FLOATS:
        return "float", _SPECIAL_FLOATS[text]
    first = text[0]
    if first == "." and _DOT_FLOAT.match(text):
        return "float", float(text)
    if first.isdigit() or first in "+-":
        plain = text.replace("_", "")
        value = _go_parse_int(plain)
        if value is not None:
            return "int", value
        if _YAML_FLOAT.match(plain):
            return "float", float(plain)
    return "str", text


class _Decoder:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, node: Optional[yaml.Node], problem: str) -> NoReturn:
        at = f" (line {node.start_mark.line + 1})" if node is not None else ""
        raise ConfigError(f"{self.where}: {path}: {problem}{at}" if path else f"{self.where}: {problem}{at}")

    # -- scalars --

    def scalar(self, node: yaml.Node, path: str) -> tuple[str, Any]:
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            self.fail(path, node, f"expected a single value, got {kind}")
        if node.tag == _PLAIN:
            return resolve_plain(node.value)
        if node.tag == _STR:
            return "str", node.value
        if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            kind, value = resolve_plain(node.value)
            if kind in ("int", "float"):
                return ("float", float(value)) if node.tag.endswith("float") else (kind, value)
        self.fail(path, node, f"cannot read {node.value!r} tagged {node.tag}")

    def is_null(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == _PLAIN and node.value in _NULLS

    def value(self, node: yaml.Node, hint: Any, path: str) -> Any:
        origin = typing.get_origin(hint)
        if origin is Union:  # Optional[X]
            if self.is_null(node):
                return None
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
            origin = typing.get_origin(hint)
        if dataclasses.is_dataclass(hint):
            return self.struct(node, hint, path)
        if origin is tuple:
            return self.sequence(node, typing.get_args(hint)[0], path)
        if origin is dict:
            return self.mapping(node, typing.get_args(hint)[1], path)
        if self.is_null(node):
            return hint()  # the zero value, as yaml.v3 leaves it
        kind, value = self.scalar(node, path)
        if hint is str:
            return node.value if kind != "null" else ""
        if hint is bool:
            if kind == "bool":
                return value
            if kind == "str" and value in _BOOL_11:
                return _BOOL_11[value]
            self.fail(path, node, f"expected true or false, got {node.value!r}")
        if hint is int:
            if kind == "float" and math.isfinite(value) and value == int(value):
                value, kind = int(value), "int"
            if kind != "int":
                self.fail(path, node, f"expected an integer, got {node.value!r}")
            if not -_MAX_I64 - 1 <= value <= _MAX_I64:
                self.fail(path, node, f"integer out of range (64-bit), got {node.value}")
            return value
        if hint is float:
            if kind not in ("int", "float"):
                self.fail(path, node, f"expected a number, got {node.value!r}")
            return float(value)
        raise TypeError(f"unsupported field type {hint!r}")  # a programming error, not input

    # -- collections --

    def sequence(self, node: yaml.Node, item: Any, path: str) -> tuple:
        if self.is_null(node):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.fail(path, node, "expected a list")
        return tuple(self.value(child, item, f"{path}[{i}]") for i, child in enumerate(node.value))

    def pairs(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key text, key node, value node) of a mapping, merge keys flattened, duplicates refused."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(path, node, "expected a mapping of key: value")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (key_node.tag == _PLAIN and key_node.value == "<<"):
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    for text, k, v in self.pairs(source, path):
                        merged.setdefault(text, (k, v))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(path, key_node, "mapping keys must be plain values")
            text = key_node.value
            if text in out:
                self.fail(
                    f"{path}.{text}" if path else text,
                    key_node,
                    f"key {text!r} given twice (first at line {out[text][0].start_mark.line + 1})",
                )
            out[text] = (key_node, value_node)
        for text, pair in merged.items():
            out.setdefault(text, pair)
        return [(text, k, v) for text, (k, v) in out.items()]

    def mapping(self, node: yaml.Node, item: Any, path: str) -> dict:
        if self.is_null(node):
            return {}
        return {text: self.value(v, item, f"{path}.{text}" if path else text) for text, _, v in self.pairs(node, path)}

    def struct(self, node: yaml.Node, cls: type, path: str) -> Any:
        if self.is_null(node):
            return cls()
        hints = typing.get_type_hints(cls)
        names = field_names(cls)
        values = {}
        for text, key_node, value_node in self.pairs(node, path):
            where = f"{path}.{text}" if path else text
            if text not in names:
                self.fail(where, key_node, f"unknown key {text!r} (valid: {', '.join(names)})")
            values[text] = self.value(value_node, hints[text], where)
        return cls(**values)


def field_names(cls: type) -> tuple[str, ...]:
    """The YAML keys of a dataclass (its field names, in order)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def decode(text: str, cls: Any, where: str) -> Any:
    """Decode one YAML document into ``cls`` (a dataclass, or a type such as ``dict[str, float]``);
    an empty document gives ``cls()``.

    ``where`` starts every error message (e.g. ``"--workload-spec spec.yaml"``).
    """
    try:
        node = yaml.compose(text, Loader=_NodeLoader)
    except yaml.YAMLError as exc:
        raise syntax_error(exc, where) from None
    if node is None:
        return cls()
    return _Decoder(where).value(node, cls, "")
