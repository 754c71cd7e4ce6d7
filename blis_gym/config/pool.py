"""The ``--instance-pool`` text: ``GPU:TP[:xCOUNT],...``, or its YAML form (a list of
``{gpu, tp, count}`` entries) in scenarios, sweeps and policy bundles. How a pool becomes
per-instance hardware classes is :mod:`blis_gym.plan.pool`."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

FLAG = "--instance-pool"


def parse_pool(text: str, where: str = FLAG) -> list[tuple[str, int, int]]:
    """(GPU, TP, count) per comma-separated entry of ``GPU:TP[:xCOUNT]``; errors name ``where``."""
    out = []
    for entry in text.split(","):
        parts = [p.strip() for p in entry.strip().split(":")]
        count = 1
        if len(parts) == 3 and parts[2][:1] in "xX":
            count_text = parts[2][1:]
            count = int(count_text) if count_text.isdigit() else 0
            parts = parts[:2]
        if len(parts) != 2 or not parts[0] or not parts[1].isdigit() or int(parts[1]) < 1 or count < 1:
            raise ConfigError(
                f"{where}: entry {entry.strip()!r} is not GPU:TP or GPU:TP:xCOUNT (e.g. H100:2:x2,A100-80:1:x2)"
            )
        out.append((parts[0], int(parts[1]), count))
    return out


_ENTRY_KEYS = ("gpu", "tp", "count")


def pool_text(value: Any, where: str) -> str:
    """The ``--instance-pool`` string for a YAML value: that string itself, or a list of
    ``{gpu, tp, count}`` entries. Raises :class:`ConfigError` naming ``where`` and the entry."""
    if isinstance(value, str):
        if value:
            parse_pool(value, where)  # fail here, naming the file, rather than at resolution
        return value
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{where}: a GPU:TP[:xCOUNT],... string or a non-empty list of "
            f"{{gpu, tp, count}} entries expected, got {value!r}"
        )
    parts = []
    for i, entry in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: a mapping with keys gpu, tp and count (optional) expected, got {entry!r}")
        unknown = [k for k in entry if k not in _ENTRY_KEYS]
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r} (allowed: {', '.join(_ENTRY_KEYS)})")
        gpu, tp, count = entry.get("gpu"), entry.get("tp"), entry.get("count", 1)
        if not isinstance(gpu, str) or not gpu or ":" in gpu or "," in gpu:
            raise ConfigError(f"{at}.gpu: a GPU name such as H100 expected, got {gpu!r}")
        for key, number in (("tp", tp), ("count", count)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ConfigError(f"{at}.{key}: a positive integer expected, got {number!r}")
        parts.append(f"{gpu}:{tp}:x{count}")
    return ",".join(parts)
