"""The sweep file: a base ``blis run`` configuration and the axes to vary, expanded into points.

A sweep file is a YAML mapping::

    description: routing policies under load       # optional
    base:                                          # blis run options every point shares
      model: meta-llama/llama-3.1-8b-instruct
      num_requests: 300
    axes:                                          # crossed, the first outermost
      - routing_policy: [round-robin, least-loaded, weighted]
      - rate: [10, 20, 40]
      - zip:                                       # varied together: one axis of equal-length lists
          hardware: [H100, A100-80]
          tp: [2, 4]
      - seed: [1, 2, 3]
    select:                                        # optional: pick the best value of one axis
      among: routing_policy                        # the axis whose values compete
      metric: ttft_p99_ms                          # mean over the other axes; lowest wins
      finalists: 2                                 # the best few go on to validation
      validate: {seed: [101, 102, 103]}            # the axes they are judged on again
      bundle: tuned.yaml                           # routing_scorers only: the winner as a policy bundle

Option names are ``blis run``'s flags with underscores (``routing-policy`` is read as
``routing_policy``); policy bundles (``policy_config``), workload specs (``workload_spec``) and
seeds are options like any other. ``axes`` may also be a mapping of option: values, all crossed.
Relative file paths are read from the sweep file's folder. Types are checked here; whether a
value makes a valid run (an unknown policy, a negative rate) is each point's own outcome.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from ..config import yamlio
from ..config.datafiles import shipped_dir, shipped_names
from ..config.pool import pool_text
from ..errors import ConfigError
from ..plan import RunOptions
from ..plan.options import FILE_OPTIONS, coerce_option, option_types, resolve_paths
from .metrics import METRICS

_TYPES = option_types(RunOptions)
_TOP_KEYS = ("description", "base", "axes", "select")
_SELECT_KEYS = ("among", "metric", "finalists", "validate", "bundle")
ZIP = "zip"


@dataclass(frozen=True)
class Point:
    """One configuration of the sweep: its index, the axis values and every option it sets."""

    index: int
    axis_values: Mapping[str, Any]
    options: Mapping[str, Any]  # base and axis values, coerced, paths absolute

    @property
    def key(self) -> str:
        """A digest of the options: how a resumed sweep recognises a finished point."""
        text = json.dumps(self.options, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def run_options(self) -> RunOptions:
        """The point as ``blis run`` would take it: every option it sets counts as given on the
        command line (so ``--seed`` beats a workload spec's seed, as it does there)."""
        return replace(RunOptions(log="error"), **self.options, explicit=frozenset(self.options))


@dataclass(frozen=True)
class Selection:
    """A sweep's ``select:``: the values of axis ``among`` ranked by the mean of ``metric``
    (lowest first) over the sweep's other points; the best ``finalists`` run again with the
    ``validate`` axes in place of those axes, and the best there wins."""

    among: str
    metric: str
    finalists: int
    validate: Mapping[str, tuple]  # axis option -> its validation values
    bundle: str  # file name in the output folder for the winning profile ("" = none)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: where it came from, its text, axis columns and points."""

    path: str
    text: str
    description: str
    columns: tuple[str, ...]  # axis options, in axis order (a zip's keys in its order)
    points: tuple[Point, ...]
    base: Mapping[str, Any] = field(default_factory=dict)
    axes: tuple = ()  # each axis as its list of {option: value} settings
    selection: Optional[Selection] = None

    def restricted(self, among: str, values: Sequence[Any], validate: Mapping[str, Sequence[Any]]) -> "SweepSpec":
        """This sweep with axis ``among`` cut to ``values`` and the ``validate`` axes' values
        replaced (a selection's validation round; no selection of its own)."""
        axes = []
        for axis in self.axes:
            names = list(axis[0])  # among and the validate axes are single-option axes
            if names == [among]:
                axis = [s for s in axis if s[among] in values]
            elif len(names) == 1 and names[0] in validate:
                axis = [{names[0]: v} for v in validate[names[0]]]
            axes.append(axis)
        return _expand(self.path, self.text, self.description, self.columns, self.base, axes, None)


def _expand(path, text, description, columns, base, axes, selection) -> SweepSpec:
    points = []
    for index, combo in enumerate(itertools.product(*axes)):
        values = {k: v for setting in combo for k, v in setting.items()}
        points.append(Point(index, values, {**base, **values}))
    return SweepSpec(path, text, description, tuple(columns), tuple(points), base, tuple(axes), selection)


def _known_keys(where: str, doc: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")


def _option(where: str, key: Any) -> str:
    name = str(key).replace("-", "_")
    if name not in FILE_OPTIONS:
        raise ConfigError(
            f"{where}: unknown option {key!r} (blis run options, with underscores: {', '.join(FILE_OPTIONS)})"
        )
    return name


def _value(where: str, name: str, value: Any, folder: Path) -> Any:
    if name == "instance_pool" and value is not None:
        value = pool_text(value, where)
    value = coerce_option(where, _TYPES[name], value)
    return resolve_paths({name: value}, folder)[name]


def _values(where: str, name: str, values: Any, folder: Path) -> list[Any]:
    if not isinstance(values, list):
        raise ConfigError(f"{where}: expected a list of values, got {values!r}")
    if not values:
        raise ConfigError(f"{where}: empty axis (give at least one value)")
    return [_value(f"{where}[{i}]", name, v, folder) for i, v in enumerate(values)]


def _axis(where: str, item: Any, folder: Path) -> list[dict[str, Any]]:
    """One axis as its list of {option: value} settings."""
    if not isinstance(item, dict) or len(item) != 1:
        raise ConfigError(
            f"{where}: expected one 'option: [values]' or 'zip: {{option: [values], ...}}' mapping, got {item!r}"
        )
    ((key, values),) = item.items()
    if key != ZIP:
        name = _option(where, key)
        return [{name: v} for v in _values(f"{where}.{key}", name, values, folder)]
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{where}.zip: expected a mapping of option: [values] (at least one)")
    lists = {}
    for key2, vals in values.items():
        name = _option(f"{where}.zip", key2)
        lists[name] = _values(f"{where}.zip.{key2}", name, vals, folder)
    lengths = {len(v) for v in lists.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in lists.items())
        raise ConfigError(f"{where}.zip: lists of different lengths ({sizes}); zipped options vary together")
    n = lengths.pop()
    return [{k: v[i] for k, v in lists.items()} for i in range(n)]


def sweeps_dir():
    return shipped_dir("sweeps")


def shipped_sweeps() -> list[str]:
    """Sweeps shipped with the package (``blis sweep NAME``)."""
    return shipped_names("sweeps")


def _locate(source: Union[str, Path]) -> Path:
    path = Path(source)
    if path.is_file():
        return path
    if str(source) in shipped_sweeps():
        return Path(str(sweeps_dir() / f"{source}.yaml"))
    raise ConfigError(f"sweep file {source}: no such file or shipped sweep (shipped: {', '.join(shipped_sweeps())})")


def _read(path: Path, source: Union[str, Path]) -> tuple[str, str, Any]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"sweep file {source}: cannot read ({exc})") from None
    return str(source), text, yamlio.parse(text, f"sweep file {source}")


def load_sweep(source: Union[str, Path]) -> SweepSpec:
    """Read, validate and expand a sweep file; ConfigError names the file and the key."""
    path = _locate(source)
    name, text, doc = _read(path, source)
    where = f"sweep file {name}"
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping with keys base and axes")
    _known_keys(where, doc, _TOP_KEYS)
    folder = path.resolve().parent
    base_doc = doc.get("base") or {}
    if not isinstance(base_doc, dict):
        raise ConfigError(f"{where}: base: expected a mapping of option: value")
    base = {}
    for key, value in base_doc.items():
        opt = _option(f"{where}: base", key)
        base[opt] = _value(f"{where}: base.{key}", opt, value, folder)
    raw_axes = doc.get("axes")
    if isinstance(raw_axes, dict):
        raw_axes = [{k: v} for k, v in raw_axes.items()]
    if not isinstance(raw_axes, list) or not raw_axes:
        raise ConfigError(
            f"{where}: axes: expected a non-empty list of 'option: [values]' items (or a mapping of option: [values])"
        )
    axes = [_axis(f"{where}: axes[{i}]", item, folder) for i, item in enumerate(raw_axes)]
    columns: list[str] = []
    for i, axis in enumerate(axes):
        for col in axis[0]:
            if col in columns:
                raise ConfigError(f"{where}: axes[{i}]: {col} is already an axis")
            if col in base:
                raise ConfigError(f"{where}: axes[{i}]: {col} is also set in base; set it in one place")
            columns.append(col)
    selection = _selection(f"{where}: select", doc.get("select"), axes, columns, folder)
    description = doc.get("description", "")
    description = str(description) if description is not None else ""
    return _expand(name, text, description, columns, base, axes, selection)


def _selection(where: str, doc: Any, axes: list, columns: list[str], folder: Path) -> Optional[Selection]:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(_SELECT_KEYS)}")
    _known_keys(where, doc, _SELECT_KEYS)
    among = _option(f"{where}.among", doc.get("among", ""))
    single = [name for axis in axes if len(axis[0]) == 1 for name in axis[0]]
    if among not in single:
        raise ConfigError(f"{where}.among: {among} is not an axis of its own (axes: {', '.join(single)})")
    metric = doc.get("metric", "ttft_p99_ms")
    if metric not in METRICS:
        raise ConfigError(f"{where}.metric: unknown metric {metric!r} (valid: {', '.join(METRICS)})")
    finalists = doc.get("finalists", 3)
    if isinstance(finalists, bool) or not isinstance(finalists, int) or finalists < 1:
        raise ConfigError(f"{where}.finalists: expected a whole number >= 1, got {finalists!r}")
    validate_doc = doc.get("validate") or {}
    if not isinstance(validate_doc, dict):
        raise ConfigError(f"{where}.validate: expected a mapping of option: [values]")
    validate = {}
    for key, values in validate_doc.items():
        name = _option(f"{where}.validate", key)
        if name == among or name not in single:
            others = ", ".join(c for c in single if c != among)
            raise ConfigError(f"{where}.validate: {name} is not one of the other axes ({others})")
        validate[name] = tuple(_values(f"{where}.validate.{key}", name, values, folder))
    bundle = doc.get("bundle", "") or ""
    if bundle and among != "routing_scorers":
        raise ConfigError(f"{where}.bundle: a policy bundle holds a routing_scorers winner; among is {among}")
    if bundle and (not isinstance(bundle, str) or "/" in bundle or not bundle.endswith((".yaml", ".yml"))):
        raise ConfigError(f"{where}.bundle: expected a file name ending in .yaml, got {bundle!r}")
    return Selection(among, metric, finalists, validate, bundle)
