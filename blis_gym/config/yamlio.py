"""A YAML loader that reads files the way BLIS's Go YAML library (yaml.v3) does.

Two differences from ``yaml.safe_load`` matter: a duplicate key is an error
rather than "last one wins", and exponent numbers without a dot (``1e3``) are
floats, as in YAML 1.2, rather than strings.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import ConfigError


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with yaml.v3's duplicate-key and exponent-float rules."""


class _FastStrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same rules on libyaml's parser, several times faster; for the shipped data files only,
    which a test reads with both loaders (on a user's file, the pure-Python parser's error
    messages are the ones we promise)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        # `<<` merge keys are resolved by construct_mapping itself; only real keys can clash.
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node)


for _loader in (StrictLoader, _FastStrictLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    # Checked after the YAML 1.1 float pattern, so it only catches the exponent forms that one misses.
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+.0123456789"),
    )


def load(text: str, shipped: bool = False) -> Any:
    """Parse one YAML document (``shipped``: one of our own data files, read with libyaml);
    raises ``yaml.YAMLError`` with a position mark on bad input."""
    return yaml.load(text, Loader=_FastStrictLoader if shipped else StrictLoader)


def syntax_error(exc: yaml.YAMLError, where: str) -> ConfigError:
    """One :class:`ConfigError` line for a YAML syntax error, prefixed by ``where``, with its position."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        return ConfigError(f"{where}: invalid YAML{at}: {' '.join(what.split())}")
    return ConfigError(f"{where}: invalid YAML: {' '.join(str(exc).split())}")


def parse(text: str, where: str, shipped: bool = False) -> Any:
    """``load``, with any syntax error turned into one :class:`ConfigError` line prefixed by ``where``."""
    try:
        return load(text, shipped)
    except yaml.YAMLError as exc:
        raise syntax_error(exc, where) from None
