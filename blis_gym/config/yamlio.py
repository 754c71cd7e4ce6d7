"""A YAML loader that reads files the way BLIS's Go YAML library (yaml.v3) does.

Two differences from ``yaml.safe_load`` matter: a duplicate key is an error
rather than "last one wins", and exponent numbers without a dot (``1e3``) are
floats, as in YAML 1.2, rather than strings.

PyYAML is imported when the first document is read: a run that reads no YAML
(``blis run`` on the shipped data, see :mod:`.catalog`) starts without it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..errors import ConfigError

# Checked after the YAML 1.1 float pattern, so it only catches the exponent forms that one misses.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.lru_cache(maxsize=1)
def _loaders() -> tuple[type, type]:
    """(strict loader, fast strict loader): SafeLoader with yaml.v3's duplicate-key and
    exponent-float rules, and the same rules on libyaml's parser, several times faster. The fast
    one reads the shipped data files only, which a test reads with both (on a user's file, the
    pure-Python parser's error messages are the ones we promise)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    class FastStrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    def construct_mapping(loader, node) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            # `<<` merge keys are resolved by construct_mapping itself; only real keys can clash.
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = loader.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return loader.construct_mapping(node)

    for loader in (StrictLoader, FastStrictLoader):
        loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
        loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789"))
    return StrictLoader, FastStrictLoader


def load(text: str, shipped: bool = False) -> Any:
    """Parse one YAML document (``shipped``: one of our own data files, read with libyaml);
    raises ``yaml.YAMLError`` with a position mark on bad input."""
    import yaml

    strict, fast = _loaders()
    return yaml.load(text, Loader=fast if shipped else strict)


def syntax_error(exc: Exception, where: str) -> ConfigError:
    """One :class:`ConfigError` line for a YAML syntax error, prefixed by ``where``, with its position."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        return ConfigError(f"{where}: invalid YAML{at}: {' '.join(what.split())}")
    return ConfigError(f"{where}: invalid YAML: {' '.join(str(exc).split())}")


def parse(text: str, where: str, shipped: bool = False) -> Any:
    """``load``, with any syntax error turned into one :class:`ConfigError` line prefixed by ``where``."""
    import yaml

    try:
        return load(text, shipped)
    except yaml.YAMLError as exc:
        raise syntax_error(exc, where) from None
