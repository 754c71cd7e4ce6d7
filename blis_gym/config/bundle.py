"""Policy bundles: every control policy of a run in one YAML file (``--policy-config``).

The file uses BLIS's schema::

    admission:
      policy: token-bucket
      token_bucket_capacity: 5000
      token_bucket_refill_rate: 500
    routing:
      policy: weighted
      scorers:
        - {name: queue-depth, weight: 2}
    priority:
      policy: slo-based
    scheduler: priority-fcfs
    instance_pool:                     # ours: a heterogeneous fleet (see plan.pool)
      - {gpu: H100, tp: 2, count: 2}

Every field is optional. A bundle only supplies defaults: a flag the user typed
on the command line always wins (:func:`apply_bundle`). Parsing is strict, as in
BLIS: unknown keys, wrong types and unknown policy names are errors, each
reported as one :class:`~blis_gym.errors.ConfigError` line naming the file and
the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NoReturn, Optional, Union

from ..errors import ConfigError
from ..policies import ADMISSION, PRIORITY, ROUTING, SCHEDULER
from ..policies.registry import Registry
from ..policies.scorers import ScorerConfig, check_scorers, parse_scorers
from . import yamlio
from .autoscale import AutoscaleConfig, parse_autoscale
from .datafiles import shipped_dir, shipped_names
from .pool import pool_text

# The reference's full name lists (and upstream's newer gaie-legacy). Some may not be built yet; they
# still load, and choosing one fails later with "not supported yet" rather than
# making a valid BLIS bundle look misspelled.
ADMISSION_POLICY_NAMES: tuple[str, ...] = ("always-admit", "token-bucket", "reject-all", "gaie-legacy")
ROUTING_POLICY_NAMES: tuple[str, ...] = ("round-robin", "least-loaded", "weighted", "prefix-affinity", "always-busiest")
PRIORITY_POLICY_NAMES: tuple[str, ...] = ("constant", "slo-based", "inverted-slo")
SCHEDULER_NAMES: tuple[str, ...] = ("fcfs", "priority-fcfs", "sjf", "reverse-priority")

# Option names (``RunOptions`` field names) that a bundle can set.
BUNDLE_OPTIONS: tuple[str, ...] = (
    "admission_policy",
    "token_bucket_capacity",
    "token_bucket_refill_rate",
    "routing_policy",
    "priority_policy",
    "scheduler",
    "instance_pool",
)
# Key under which apply_bundle returns the bundle's scorer profile.
BUNDLE_SCORERS_KEY = "bundle_scorers"

_TOP_KEYS = (
    "admission",
    "routing",
    "priority",
    "scheduler",
    "instance_pool",
    "autoscaler",
    "node_pools",
    "instance_lifecycle",
)
_ADMISSION_KEYS = ("policy", "token_bucket_capacity", "token_bucket_refill_rate")
_ROUTING_KEYS = ("policy", "scorers")
_PRIORITY_KEYS = ("policy",)
_SCORER_KEYS = ("name", "weight")


@dataclass(frozen=True)
class PolicyBundle:
    """A parsed, validated bundle. ``""``, ``None`` and ``()`` mean "not set in the file"."""

    admission_policy: str = ""
    token_bucket_capacity: Optional[float] = None
    token_bucket_refill_rate: Optional[float] = None
    routing_policy: str = ""
    scorers: tuple[ScorerConfig, ...] = ()
    priority_policy: str = ""
    scheduler: str = ""
    instance_pool: str = ""  # ours: the --instance-pool string (a YAML list is converted)
    autoscale: Optional[AutoscaleConfig] = None  # autoscaler, node_pools, instance_lifecycle


# --- YAML reading ----------------------------------------------------------------------------


class _Source:
    """Names the file in every error so each message stands on its own."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)

    def fail(self, field: str, problem: str) -> NoReturn:
        where = f"--policy-config {self.path}"
        raise ConfigError(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


def shipped_bundles() -> list[str]:
    """Names of the example bundles installed with the package (``configs/policies/*.yaml``)."""
    return shipped_names("policies")


def _read_document(src: _Source) -> Any:
    try:
        text = src.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        # A bare name of a shipped bundle works from any directory.
        if str(src.path) in shipped_bundles():
            text = (shipped_dir("policies") / f"{src.path}.yaml").read_text("utf-8")
        else:
            src.fail("", f"file not found (or name a shipped bundle: {', '.join(shipped_bundles())})")
    except IsADirectoryError:
        src.fail("", "is a directory, expected a YAML file")
    except (OSError, UnicodeDecodeError) as exc:
        src.fail("", f"cannot read file ({_one_line(str(exc))})")
    return yamlio.parse(text, f"--policy-config {src.path}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- typed field readers ---------------------------------------------------------------------


def _mapping(src: _Source, field: str, value: Any, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """A section as a mapping with only ``allowed`` keys; YAML null (``admission:``) is empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        src.fail(field or "top level", f"mapping expected (keys: {', '.join(allowed)}), got {_describe(value)}")
    for key in value:
        if key not in allowed:
            name = f"{field}.{key}" if field else str(key)
            src.fail(name, f"unknown key {key!r} (allowed: {', '.join(allowed)})")
    return value


def _string(src: _Source, field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        src.fail(field, f"string expected, got {_describe(value)}")
    return value


def _number(src: _Source, field: str, value: Any) -> Optional[float]:
    """A finite, non-negative number, or ``None`` when absent (0 counts as set)."""
    if value is None:
        return None
    # bool is an int subclass in Python; `true` is never a valid count or rate.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        src.fail(field, f"number expected, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        src.fail(field, "must be a finite number, got an integer too large for a float")
    if not math.isfinite(number):
        src.fail(field, f"must be a finite number, got {value}")
    if number < 0:
        src.fail(field, f"must be non-negative, got {value}")
    return number


def _policy(src: _Source, field: str, value: Any, family: str, reference: tuple[str, ...], registry: Registry) -> str:
    name = _string(src, field, value)
    valid = sorted(set(reference) | set(registry.names()))
    if name and name not in valid:
        src.fail(field, f"unknown {family} {name!r} (valid: {', '.join(valid)})")
    return name


def _scorers(src: _Source, field: str, value: Any) -> tuple[ScorerConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        src.fail(field, f"list of {{name, weight}} entries expected, got {_describe(value)}")
    configs: list[ScorerConfig] = []
    checked: tuple[ScorerConfig, ...] = ()
    for i, entry in enumerate(value):
        at = f"{field}[{i}]"
        if entry is None:
            src.fail(at, "mapping with keys name, weight expected, got null")
        item = _mapping(src, at, entry, _SCORER_KEYS)
        for key in _SCORER_KEYS:
            if key not in item:
                src.fail(f"{at}.{key}", "missing (each scorer needs a name and a weight)")
        name = item["name"]
        if not isinstance(name, str):
            src.fail(f"{at}.name", f"string expected, got {_describe(name)}")
        weight = item["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            src.fail(f"{at}.weight", f"number expected, got {_describe(weight)}")
        try:
            float(weight)
        except OverflowError:
            src.fail(f"{at}.weight", "must be a finite number, got an integer too large for a float")
        configs.append(ScorerConfig(name, weight))
        # Earlier entries already passed, so a failure here is about entry i (name,
        # duplicate or weight), and its message carries this entry's index.
        checked = check_scorers(configs, where=f"--policy-config {src.path}: {at}")
    return checked


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# --- public API ------------------------------------------------------------------------------


def load_policy_bundle(path: Union[str, Path]) -> PolicyBundle:
    """Read and validate a policy bundle; an empty file is a bundle that sets nothing.

    Raises :class:`ConfigError` (one line: file, field, what is allowed) on any problem.
    Token bucket values may be 0 here, as in BLIS; whether they suit the chosen
    admission policy is checked later with the final option values.
    """
    src = _Source(path)
    doc = _mapping(src, "", _read_document(src), _TOP_KEYS)
    admission = _mapping(src, "admission", doc.get("admission"), _ADMISSION_KEYS)
    routing = _mapping(src, "routing", doc.get("routing"), _ROUTING_KEYS)
    priority = _mapping(src, "priority", doc.get("priority"), _PRIORITY_KEYS)
    return PolicyBundle(
        admission_policy=_policy(
            src, "admission.policy", admission.get("policy"), "admission policy", ADMISSION_POLICY_NAMES, ADMISSION
        ),
        token_bucket_capacity=_number(src, "admission.token_bucket_capacity", admission.get("token_bucket_capacity")),
        token_bucket_refill_rate=_number(
            src, "admission.token_bucket_refill_rate", admission.get("token_bucket_refill_rate")
        ),
        routing_policy=_policy(
            src, "routing.policy", routing.get("policy"), "routing policy", ROUTING_POLICY_NAMES, ROUTING
        ),
        scorers=_scorers(src, "routing.scorers", routing.get("scorers")),
        priority_policy=_policy(
            src, "priority.policy", priority.get("policy"), "priority policy", PRIORITY_POLICY_NAMES, PRIORITY
        ),
        scheduler=_policy(src, "scheduler", doc.get("scheduler"), "scheduler", SCHEDULER_NAMES, SCHEDULER),
        instance_pool=_pool(src, doc.get("instance_pool")),
        autoscale=parse_autoscale(doc, src.fail),
    )


def _pool(src: _Source, value: Any) -> str:
    if value is None:
        return ""
    try:
        return pool_text(value, "instance_pool")
    except ConfigError as exc:
        src.fail("", str(exc))


def apply_bundle(bundle: PolicyBundle, values: Mapping[str, Any], explicit: set[str]) -> dict[str, Any]:
    """Option values with the bundle's settings filled in as defaults.

    ``values`` is keyed by option name (``admission_policy``, ``token_bucket_capacity``,
    ``token_bucket_refill_rate``, ``routing_policy``, ``priority_policy``, ``scheduler``,
    ``routing_scorers``, ...); ``explicit`` names the options the user typed. A bundle
    field replaces a value only when the file sets it and the option is not explicit.
    The bundle's scorers come back under ``bundle_scorers``; they are meant for use
    only when ``routing_scorers`` is ``""`` (see :func:`effective_scorers`).
    """
    out = dict(values)
    settings: dict[str, Any] = {
        "admission_policy": bundle.admission_policy or None,
        "token_bucket_capacity": bundle.token_bucket_capacity,
        "token_bucket_refill_rate": bundle.token_bucket_refill_rate,
        "routing_policy": bundle.routing_policy or None,
        "priority_policy": bundle.priority_policy or None,
        "scheduler": bundle.scheduler or None,
        "instance_pool": bundle.instance_pool or None,
    }
    for option, setting in settings.items():
        # None is "not in the file"; 0.0 is a real setting and must still apply.
        if setting is not None and option not in explicit:
            out[option] = setting
    out[BUNDLE_SCORERS_KEY] = bundle.scorers
    return out


def effective_scorers(routing_scorers: str, bundle_scorers: tuple[ScorerConfig, ...]) -> tuple[ScorerConfig, ...]:
    """The weighted-routing profile: ``--routing-scorers`` if given, else the bundle's.

    An empty result means "use the default profile". The flag text is parsed here,
    so a bad ``--routing-scorers`` raises :class:`ConfigError` as usual.
    """
    if routing_scorers != "":
        return parse_scorers(routing_scorers)
    return bundle_scorers
