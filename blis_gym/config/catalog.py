"""Reference data: trained coefficients, model defaults, workload presets and GPU specs.

The shipped data lives in ``configs/`` (installed as package ``blis_gym.configs``), one concept
per file, each tagged with a ``schema:`` key. ``load_catalog(path)`` also reads a file in BLIS's
own ``defaults.yaml`` format, so ``--defaults-filepath`` keeps working with BLIS's files.

Units: coefficients are in microseconds (BLIS's tick), GPU throughput in TFLOP/s and TB/s,
overheads and latencies in microseconds, token counts in tokens.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

from ..engine.roofline import GPUSpec
from . import yamlio
from .datafiles import Source, fail, read_json, read_text, read_yaml, shipped_dir

COEFFICIENTS_SCHEMA = "blis-gym/coefficients/v1"
DEFAULTS_SCHEMA = "blis-gym/model-defaults/v1"
WORKLOADS_SCHEMA = "blis-gym/workloads/v1"
GPUS_SCHEMA = "blis-gym/gpus/v1"

COEFFICIENTS_FILE = "coefficients.yaml"
DEFAULTS_FILE = "model_defaults.yaml"
WORKLOADS_FILE = "workloads.yaml"
GPUS_FILE = "gpus.yaml"
CATALOG_FILES = (COEFFICIENTS_FILE, DEFAULTS_FILE, WORKLOADS_FILE, GPUS_FILE)
# The shipped catalog files' documents as JSON (see write_shipped_cache).
CACHE_FILE = "catalog.json"


@dataclass(frozen=True)
class CoefficientEntry:
    """Trained latency coefficients for one (model, GPU, TP, vLLM version).

    ``alpha`` predicts per-request queueing/processing delay and ``beta`` the step time, both in
    microseconds; ``total_kv_blocks`` is the KV-cache size in blocks; ``best_loss`` is the fit's
    calibration loss (informational, unused at run time).
    """

    model: str
    gpu: str
    tp: int
    vllm_version: str
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    total_kv_blocks: int
    best_loss: float = 0.0


@dataclass(frozen=True)
class ModelDefaults:
    """The GPU, tensor-parallel degree and vLLM version a model runs with when not given."""

    gpu: str
    tp: int
    vllm_version: str


@dataclass(frozen=True)
class WorkloadPreset:
    """A named synthetic workload; every figure is a token count."""

    prefix_tokens: int
    prompt_mean: int
    prompt_stdev: int
    prompt_min: int
    prompt_max: int
    output_mean: int
    output_stdev: int
    output_min: int
    output_max: int


@dataclass(frozen=True)
class Catalog:
    """Everything BLIS reads from ``defaults.yaml`` plus GPU specs, read-only."""

    coefficients: tuple[CoefficientEntry, ...]
    model_defaults: Mapping[str, ModelDefaults]
    workloads: Mapping[str, WorkloadPreset]
    gpus: Mapping[str, GPUSpec]
    source: str = field(default="", compare=False)  # provenance, not content

    def __post_init__(self) -> None:
        for name in ("model_defaults", "workloads", "gpus"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "coefficients", tuple(self.coefficients))

    def defaults_for(self, model: str) -> ModelDefaults | None:
        """The default GPU/TP/vLLM version for ``model`` (exact id), or None."""
        return self.model_defaults.get(model)

    def find_coefficients(self, model: str, tp: int, gpu: str, vllm_version: str) -> CoefficientEntry | None:
        """The first entry matching all four exactly, as BLIS does, or None."""
        for entry in self.coefficients:
            if (entry.model, entry.tp, entry.gpu, entry.vllm_version) == (
                model,
                tp,
                gpu,
                vllm_version,
            ):
                return entry
        return None

    def preset(self, name: str) -> WorkloadPreset | None:
        """The workload preset called ``name``, or None."""
        return self.workloads.get(name)


# --- field tables: our key -> kind, and BLIS's key -> our key --------------------------------

_ENTRY = {
    "gpu": "str",
    "tp": "int",
    "vllm_version": "str",
    "alpha": "floats",
    "beta": "floats",
    "total_kv_blocks": "int",
    "best_loss": "float",
}
_ENTRY_BLIS = {
    "GPU": "gpu",
    "tensor_parallelism": "tp",
    "vllm_version": "vllm_version",
    "alpha_coeffs": "alpha",
    "beta_coeffs": "beta",
    "total_kv_blocks": "total_kv_blocks",
    "best_loss": "best_loss",
}
_DEFAULTS = {"gpu": "str", "tp": "int", "vllm_version": "str"}
_DEFAULTS_BLIS = {"GPU": "gpu", "tensor_parallelism": "tp", "vllm_version": "vllm_version"}
_PRESET = {f.name: "int" for f in fields(WorkloadPreset)}
_PRESET_BLIS = {
    "prefix_tokens": "prefix_tokens",
    "prompt_tokens": "prompt_mean",
    "prompt_tokens_stdev": "prompt_stdev",
    "prompt_tokens_min": "prompt_min",
    "prompt_tokens_max": "prompt_max",
    "output_tokens": "output_mean",
    "output_tokens_stdev": "output_stdev",
    "output_tokens_min": "output_min",
    "output_tokens_max": "output_max",
}
_GPU = {f.name: "float" for f in fields(GPUSpec)}
_GPU_BLIS = {
    "TFlopsPeak": "tflops_peak",
    "BwPeakTBs": "bw_peak_tbs",
    "BwEffConstant": "bw_eff_constant",
    "TOverheadMicros": "t_overhead_us",
    "perLayerOverhead": "per_layer_overhead_us",
    "mfuPrefill": "mfu_prefill",
    "mfuDecode": "mfu_decode",
    "allReduceLatency": "all_reduce_latency_us",
}
_BLIS_TOP = ("models", "defaults", "workloads", "version")

_ZERO: dict[str, Any] = {"int": 0, "float": 0.0, "str": "", "floats": ()}
_WANT = {"int": "an integer", "float": "a number", "str": "a string", "floats": "a list of numbers"}
_BAD = object()


# --- validation helpers ----------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _convert(kind: str, value: object) -> Any:
    """``value`` as ``kind``, or ``_BAD``."""
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else _BAD
    if kind == "float":
        return float(value) if _is_number(value) else _BAD  # type: ignore[arg-type]
    if kind == "str":
        return value if isinstance(value, str) else _BAD
    if isinstance(value, list) and all(_is_number(x) for x in value):
        return tuple(float(x) for x in value)
    return _BAD


def _mapping(src: str, where: str, node: object) -> dict[Any, Any]:
    if node is None:
        return {}
    if not isinstance(node, dict):
        fail(src, f"{where} must be a mapping")
    return node


def _record(
    src: str, where: str, node: object, spec: Mapping[str, str], rename: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Check one mapping against ``spec`` (our keys -> kinds).

    With ``rename`` (BLIS key -> our key) the node uses BLIS's keys and, as in Go, a missing or
    null field takes its zero value; without it every field is required.
    """
    if not isinstance(node, dict):
        fail(src, f"{where} must be a mapping")
    keys = rename or {k: k for k in spec}
    for key in node:
        if key not in keys:
            fail(src, f"{where}: unknown field {key!r} (allowed: {', '.join(keys)})")
    out: dict[str, Any] = {}
    for key, ours in keys.items():
        kind = spec[ours]
        if rename is not None and node.get(key) is None:
            out[ours] = _ZERO[kind]
            continue
        if key not in node:
            fail(src, f"{where}.{key} is missing")
        value = _convert(kind, node[key])
        if value is _BAD:
            fail(src, f"{where}.{key} must be {_WANT[kind]}")
        out[ours] = value
    return out


def _named(src: str, where: str, node: object) -> dict[str, Any]:
    """A mapping whose keys are names (model ids, preset names, GPU names)."""
    table = _mapping(src, where, node)
    for key in table:
        if not isinstance(key, str):
            fail(src, f"{where} key {key!r} must be a string")
    return table


def _check_schema(src: str, doc: object, schema: str, body: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        fail(src, "top level must be a mapping")
    if doc.get("schema") != schema:
        fail(src, f"schema must be {schema!r} (got {doc.get('schema')!r})")
    for key in doc:
        if key not in ("schema", body):
            fail(src, f"unknown top-level key {key!r} (allowed: schema, {body})")
    return doc


# --- BLIS's defaults.yaml --------------------------------------------------------------------


def _grouped(entries: list[CoefficientEntry]) -> tuple[CoefficientEntry, ...]:
    # Group rows by model (first appearance), keeping file order within a model: lookups match
    # on the model id, so "first match wins" gives the same answer as in the original order.
    rank: dict[str, int] = {}
    for entry in entries:
        rank.setdefault(entry.model, len(rank))
    return tuple(sorted(entries, key=lambda e: rank[e.model]))


def _parse_blis(doc: object, src: str) -> Catalog:
    if not isinstance(doc, dict):
        fail(src, "top level must be a mapping")
    for key in doc:
        if key not in _BLIS_TOP:
            fail(src, f"unknown top-level key {key!r} (allowed: {', '.join(_BLIS_TOP)})")
    version = doc.get("version")
    if version is not None and not isinstance(version, (str, int, float)):
        fail(src, "version must be a string")
    rows = doc.get("models") or []
    if not isinstance(rows, list):
        fail(src, "models must be a list")
    entries = []
    for i, row in enumerate(rows):
        spec = {**_ENTRY, "model": "str"}
        values = _record(src, f"models[{i}]", row, spec, {"id": "model", **_ENTRY_BLIS})
        entries.append(CoefficientEntry(**values))
    defaults = {
        name: ModelDefaults(**_record(src, f"defaults[{name!r}]", node, _DEFAULTS, _DEFAULTS_BLIS))
        for name, node in _named(src, "defaults", doc.get("defaults")).items()
    }
    presets = {
        name: WorkloadPreset(**_record(src, f"workloads[{name!r}]", node, _PRESET, _PRESET_BLIS))
        for name, node in _named(src, "workloads", doc.get("workloads")).items()
    }
    return Catalog(_grouped(entries), defaults, presets, {}, source=src)


def read_blis_defaults(path: str | Path) -> Catalog:
    """Read a file in BLIS's ``defaults.yaml`` format; the result has no GPU specs."""
    return _parse_blis(read_yaml(Path(path), str(path)), str(path))


def load_hardware_config(path: str | Path) -> Mapping[str, GPUSpec]:
    """Read GPU specs from a file in BLIS's ``hardware_config.json`` format."""
    src = str(path)
    table = _named(src, "top level", read_json(Path(path), src))
    return MappingProxyType(
        {name: GPUSpec(**_record(src, f"[{name!r}]", node, _GPU, _GPU_BLIS)) for name, node in table.items()}
    )


# --- our schema ------------------------------------------------------------------------------


def _parse_coefficients(doc: object, src: str) -> tuple[CoefficientEntry, ...]:
    models = _named(src, "models", _check_schema(src, doc, COEFFICIENTS_SCHEMA, "models").get("models"))
    entries = []
    for model, rows in models.items():
        if not isinstance(rows, list):
            fail(src, f"models[{model!r}] must be a list of entries")
        for i, row in enumerate(rows):
            values = _record(src, f"models[{model!r}][{i}]", row, _ENTRY)
            entries.append(CoefficientEntry(model=model, **values))
    return tuple(entries)


def _parse_section(
    doc: object, src: str, schema: str, body: str, spec: Mapping[str, str], make: type
) -> dict[str, Any]:
    table = _named(src, body, _check_schema(src, doc, schema, body).get(body))
    return {name: make(**_record(src, f"{body}[{name!r}]", node, spec)) for name, node in table.items()}


_SIBLINGS = (  # file, schema, body key, field spec, record type, Catalog attribute
    (DEFAULTS_FILE, DEFAULTS_SCHEMA, "defaults", _DEFAULTS, ModelDefaults, "model_defaults"),
    (WORKLOADS_FILE, WORKLOADS_SCHEMA, "presets", _PRESET, WorkloadPreset, "workloads"),
    (GPUS_FILE, GPUS_SCHEMA, "gpus", _GPU, GPUSpec, "gpus"),
)


def _load_ours(
    directory: Source, doc: object, src: str, fallback: Catalog | None, read: Callable[[Source, str], Any] = read_yaml
) -> Catalog:
    """A catalog from our coefficients file plus its sibling files in ``directory``, each read
    with ``read(path, src)``.

    A sibling that is absent is taken from ``fallback`` (the shipped catalog) if given.
    """
    parts: dict[str, Any] = {}
    for filename, schema, body, spec, make, attr in _SIBLINGS:
        sibling = directory.joinpath(filename)
        if fallback is not None and not sibling.is_file():
            parts[attr] = getattr(fallback, attr)
            continue
        sib_src = str(sibling)
        parts[attr] = _parse_section(read(sibling, sib_src), sib_src, schema, body, spec, make)
    return Catalog(_parse_coefficients(doc, src), source=src, **parts)


def _checksum(text: str) -> str:
    return f"{zlib.crc32(text.encode('utf-8')):08x}-{len(text)}"


def shipped_documents(directory: Source) -> dict[str, Any]:
    """The shipped catalog files' YAML documents, by file name: from ``catalog.json`` (written by
    :func:`write_shipped_cache`) when it was made from exactly these files, else parsed."""
    texts = {name: read_text(directory.joinpath(name), str(directory.joinpath(name))) for name in CATALOG_FILES}
    checksums = {name: _checksum(text) for name, text in texts.items()}
    try:
        cached = json.loads(directory.joinpath(CACHE_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, dict) and cached.get("checksums") == checksums:
        return cached["documents"]
    return {name: yamlio.parse(text, str(directory.joinpath(name)), shipped=True) for name, text in texts.items()}


def write_shipped_cache(directory: Path) -> Path:
    """Write ``catalog.json`` beside the catalog files in ``directory``: their documents as JSON,
    which loads in a fraction of the time YAML takes, with a checksum of each file it came from."""
    texts = {name: (directory / name).read_text("utf-8") for name in CATALOG_FILES}
    doc = {
        "generated_by": "blis_gym.config.catalog.write_shipped_cache (tools/gen_configs.py --cache); do not edit",
        "checksums": {name: _checksum(text) for name, text in texts.items()},
        "documents": {name: yamlio.parse(text, name, shipped=True) for name, text in texts.items()},
    }
    path = directory / CACHE_FILE
    path.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")  # key order is meaning (first match wins)
    return path


@functools.lru_cache(maxsize=1)
def _shipped_catalog() -> Catalog:
    directory = shipped_dir()
    docs = shipped_documents(directory)
    path = directory.joinpath(COEFFICIENTS_FILE)
    return _load_ours(directory, docs[COEFFICIENTS_FILE], str(path), fallback=None, read=lambda f, _: docs[f.name])


def load_catalog(defaults_path: str | None = None) -> Catalog:
    """Load the shipped catalog (cached), or the file at ``defaults_path``.

    The file may be BLIS's ``defaults.yaml`` (GPU specs then come from the shipped data) or our
    coefficients file, recognised by its ``schema:`` key (sibling ``model_defaults.yaml``,
    ``workloads.yaml`` and ``gpus.yaml`` are used when present, else the shipped ones).
    Raises ConfigError for a missing or invalid file.
    """
    if defaults_path is None:
        return _shipped_catalog()
    path = Path(defaults_path)
    src = str(defaults_path)
    doc = read_yaml(path, src)
    if isinstance(doc, dict) and "schema" in doc:
        return _load_ours(path.parent, doc, src, fallback=_shipped_catalog())
    return replace(_parse_blis(doc, src), gpus=_shipped_catalog().gpus)
