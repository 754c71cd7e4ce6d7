"""Which step-time model a run uses: trained coefficients (blackbox) or roofline.

``--latency-model auto`` (the default) picks as BLIS does:

* coefficients given (any non-zero ``--alpha-coeffs``/``--beta-coeffs``): blackbox with them; a
  config folder or hardware file is then ignored;
* all zero, with neither ``--model-config-folder`` nor ``--hardware-config``: the defaults file's
  GPU, TP and vLLM version for the model fill what was not given, and its trained
  coefficients (and KV blocks) are used;
* all zero with a config folder and a hardware file: roofline, from that ``config.json`` and the
  ``--hardware`` entry of that file, at ``--tp``.

Beyond BLIS, where it stops with "provide a model config folder": a model whose architecture
facts we ship needs no folder, and a GPU we ship specs for needs no hardware file; a model
with no trained coefficients for the GPU and TP asked for runs roofline from the shipped facts.
``--latency-model roofline`` forces roofline the same way; ``blackbox`` never falls back to it.

``--latency-model trained-physics`` (upstream BLIS's newer default, after the reference commit)
runs :mod:`blis_gym.engine.trained_physics` from the same model facts and GPU specs as roofline,
with the global coefficients of ``configs/trained_physics.yaml``; ``--alpha-coeffs`` (3 values)
and ``--beta-coeffs`` (7 to 11) each replace their half when given. ``auto`` never picks it, so
every run the reference can make keeps the reference's step-time model.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from ..config.catalog import Catalog, CoefficientEntry, load_hardware_config
from ..config.datafiles import TRAINED_PHYSICS_FILE, TRAINED_PHYSICS_SCHEMA, fail, read_json, read_yaml, shipped_dir
from ..config.model_facts import has_model_facts, load_model_facts, model_facts_from_hf, shipped_model_names
from ..engine.roofline import GPUSpec, ModelArch, RooflineSpec
from ..engine.trained_physics import TrainedPhysicsArch, TrainedPhysicsSpec, check_coefficients
from ..errors import ConfigError
from .options import RunOptions

log = logging.getLogger("blis_gym")

LATENCY_MODELS = ("auto", "blackbox", "roofline", "trained-physics")
DEFAULT_TOTAL_KV_BLOCKS = 1000000
ZERO_ALPHA = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class LatencyChoice:
    """The resolved step-time model: ``roofline`` set means that analytical model (roofline, or
    trained-physics for a :class:`TrainedPhysicsSpec`, whose own coefficients ``alpha`` and
    ``beta`` then repeat); unset means blackbox with ``alpha`` and ``beta``."""

    model: str  # the model id the run reports (lower-cased where the defaults file was read)
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    total_kv_blocks: int
    roofline: Optional[Union[RooflineSpec, TrainedPhysicsSpec]] = None


def _all_zero(values: tuple[float, ...]) -> bool:
    return all(v == 0 for v in values)


def catalog_entry(catalog: Catalog, model: str, gpu: str, tp: int, version: str) -> CoefficientEntry:
    """The trained coefficients row for (model, GPU, TP, vLLM version); ConfigError listing the
    rows there are when none matches."""
    entry = catalog.find_coefficients(model, tp, gpu, version)
    if entry is not None:
        return entry
    known = sorted({e.model for e in catalog.coefficients})
    rows = [f"{e.gpu}/tp{e.tp}/{e.vllm_version}" for e in catalog.coefficients if e.model == model]
    if rows:
        hint = f"available for this model: {', '.join(rows)}"
    else:
        close = [k for k in known if model.split("/")[-1][:6] in k][:5] or known[:5]
        hint = f"unknown model; known models include {', '.join(close)} ({len(known)} in all)"
    raise ConfigError(
        f"--model {model}: no trained coefficients for GPU={gpu or '?'}, TP={tp}, "
        f"vLLM={version or '?'} in {catalog.source} ({hint}); pass --alpha-coeffs and --beta-coeffs "
        f"to use your own, or --latency-model roofline"
    )


# --- roofline inputs -----------------------------------------------------------------------


def _first(facts: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        value = facts.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def arch_from_facts(facts: Mapping[str, Any]) -> ModelArch:
    """A :class:`ModelArch` from HuggingFace-named facts (``model_facts_from_hf`` or a shipped
    model file), reading each family's names for its experts."""
    experts = _first(facts, "num_local_experts", "num_experts", "n_routed_experts")
    moe: dict[str, int] = {}
    if experts:
        expert_ff = _first(facts, "moe_intermediate_size", "intermediate_size")
        shared = _first(facts, "shared_expert_intermediate_size")
        if not shared and _first(facts, "n_shared_experts"):
            shared = facts["n_shared_experts"] * expert_ff
        moe = {
            "experts": experts,
            "experts_per_token": _first(facts, "num_experts_per_tok"),
            "expert_intermediate": expert_ff,
            "shared_intermediate": shared,
            "dense_layers": _first(facts, "first_k_dense_replace"),
        }
    return ModelArch(
        layers=facts["num_hidden_layers"],
        hidden=facts["hidden_size"],
        heads=facts["num_attention_heads"],
        kv_heads=_first(facts, "num_key_value_heads"),
        intermediate=_first(facts, "intermediate_size"),
        bytes_per_param=float(facts["bytes_per_param"]),
        vocab=_first(facts, "vocab_size"),
        **moe,
    )


def load_arch(folder: str, model: str) -> ModelArch:
    """The model's architecture: from ``folder/config.json`` when a folder is given, else from
    the facts we ship for ``model``."""
    if folder:
        path = Path(folder) / "config.json"
        if not path.is_file():
            raise ConfigError(f"--model-config-folder {folder}: no config.json there")
        return arch_from_facts(model_facts_from_hf(path))
    return arch_from_facts(load_model_facts(model))


def load_gpu(hardware_config: str, gpu: str, catalog: Catalog) -> GPUSpec:
    """``gpu``'s figures from the hardware file, or from the shipped GPU specs."""
    table = load_hardware_config(hardware_config) if hardware_config else catalog.gpus
    where = hardware_config or "the shipped GPU specs"
    if not gpu:
        raise ConfigError(f"roofline needs --hardware, a GPU in {where} (available: {', '.join(sorted(table))})")
    spec = table.get(gpu)
    if spec is None:
        raise ConfigError(f"--hardware {gpu}: GPU not found in {where} (available: {', '.join(sorted(table))})")
    return spec


def roofline_spec(o: RunOptions, model: str, gpu: str, tp: int, catalog: Catalog) -> RooflineSpec:
    """Roofline for ``model`` on ``gpu`` at ``tp`` (from the run's folder and hardware file, or
    the shipped data)."""
    if tp <= 0:
        raise ConfigError(f"roofline needs --tp > 0 (tensor-parallel GPUs per instance), got {tp}")
    arch = load_arch(o.model_config_folder, model)
    if o.ep > 1 and not arch.is_moe:
        log.warning("--ep %d has no effect: %s is not a mixture-of-experts model", o.ep, model)
    return RooflineSpec(arch, load_gpu(o.hardware_config, gpu, catalog), tp, o.ep, gpu)


def has_roofline_inputs(o: RunOptions, model: str, gpu: str, catalog: Catalog) -> bool:
    """Whether roofline could run ``model`` on ``gpu`` without more files."""
    facts = bool(o.model_config_folder) or has_model_facts(model)
    gpus = bool(o.hardware_config) or gpu in catalog.gpus
    return facts and gpus


# --- the choice ------------------------------------------------------------------------------


def choose_latency(o: RunOptions, catalog_loader: Callable[[], Catalog]) -> LatencyChoice:
    """Blackbox or roofline for this run, with its coefficients and KV size (see module doc)."""
    alpha, beta = tuple(o.alpha_coeffs), tuple(o.beta_coeffs)
    kv_blocks = o.total_kv_blocks if o.total_kv_blocks is not None else DEFAULT_TOTAL_KV_BLOCKS
    given = not (_all_zero(alpha) and _all_zero(beta))
    if o.latency_model == "trained-physics":
        catalog = catalog_loader()
        model, gpu, tp, _ = with_model_defaults(o, catalog)
        spec = trained_physics_spec(o, model, gpu, tp, catalog)
        return LatencyChoice(model, spec.alpha, spec.beta, kv_blocks, spec)
    if o.latency_model == "roofline":
        if given:
            raise ConfigError("--latency-model roofline takes no --alpha-coeffs/--beta-coeffs")
        return _roofline_with_defaults(o, catalog_loader(), kv_blocks)
    if given:
        return LatencyChoice(o.model, alpha, beta, kv_blocks)
    if o.model_config_folder or o.hardware_config:
        return _roofline_from_files(o, catalog_loader(), kv_blocks)
    catalog = catalog_loader()
    model, gpu, tp, version = with_model_defaults(o, catalog)
    entry = catalog.find_coefficients(model, tp, gpu, version)
    if entry is None and o.latency_model == "auto" and tp > 0 and has_roofline_inputs(o, model, gpu, catalog):
        log.warning("no trained coefficients for model=%s on GPU=%s, TP=%d; using the roofline model", model, gpu, tp)
        return LatencyChoice(model, ZERO_ALPHA, ZERO_ALPHA, kv_blocks, roofline_spec(o, model, gpu, tp, catalog))
    entry = entry or catalog_entry(catalog, model, gpu, tp, version)  # raises, naming what there is
    kv = o.total_kv_blocks if o.total_kv_blocks is not None else entry.total_kv_blocks
    return LatencyChoice(model, tuple(entry.alpha), tuple(entry.beta), kv)


def with_model_defaults(o: RunOptions, catalog: Catalog) -> tuple[str, str, int, str]:
    """(model, GPU, TP, vLLM version): the flags, with the defaults file's values for the model
    where a flag was not given (warning for each, as BLIS does)."""
    model = o.model.lower()
    gpu, tp, version = o.hardware, o.tp, o.vllm_version
    defaults = catalog.defaults_for(model)
    if defaults is not None:
        if tp == 0 and defaults.tp > 0:
            log.warning("no --tp given for model=%s; using default tp=%d", model, defaults.tp)
            tp = defaults.tp
        if not gpu and defaults.gpu:
            log.warning("no --hardware given for model=%s; using default GPU=%s", model, defaults.gpu)
            gpu = defaults.gpu
        if not version and defaults.vllm_version:
            log.warning(
                "no --vllm-version given for model=%s; using default vLLM version=%s", model, defaults.vllm_version
            )
            version = defaults.vllm_version
    return model, gpu, tp, version


def _roofline_with_defaults(o: RunOptions, catalog: Catalog, kv_blocks: int) -> LatencyChoice:
    model, gpu, tp, _ = with_model_defaults(o, catalog)
    return LatencyChoice(model, ZERO_ALPHA, ZERO_ALPHA, kv_blocks, roofline_spec(o, model, gpu, tp, catalog))


def _roofline_from_files(o: RunOptions, catalog: Catalog, kv_blocks: int) -> LatencyChoice:
    """BLIS's roofline branch: a config folder and/or hardware file given, coefficients zero."""
    model = o.model
    if not o.model_config_folder and not has_model_facts(model):
        raise ConfigError(
            f"roofline: provide --model-config-folder, a folder containing config.json "
            f"for model={model} (facts are shipped for: {', '.join(shipped_model_names())})"
        )
    if not o.hardware_config and o.hardware not in catalog.gpus:
        raise ConfigError(
            f"roofline: provide --hardware-config, a hardware config file "
            f"(e.g. hardware_config.json); GPUs shipped: {', '.join(sorted(catalog.gpus))}"
        )
    if not o.hardware or o.tp <= 0:
        raise ConfigError(
            "roofline (--model-config-folder/--hardware-config) also needs --hardware "
            f"(got {o.hardware or 'none'}) and --tp > 0 (got {o.tp})"
        )
    return LatencyChoice(model, ZERO_ALPHA, ZERO_ALPHA, kv_blocks, roofline_spec(o, model, o.hardware, o.tp, catalog))


# --- trained-physics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedPhysicsDefaults:
    """The shipped trained-physics coefficients and FP8 peaks (``configs/trained_physics.yaml``)."""

    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    fp8_tflops: Mapping[str, float]


@functools.lru_cache(maxsize=1)
def trained_physics_defaults() -> TrainedPhysicsDefaults:
    path = shipped_dir().joinpath(TRAINED_PHYSICS_FILE)
    src = str(path)
    doc = read_yaml(path, src, shipped=True)
    if not isinstance(doc, dict) or doc.get("schema") != TRAINED_PHYSICS_SCHEMA:
        fail(src, f"schema must be {TRAINED_PHYSICS_SCHEMA!r}")

    def numbers(key: str) -> tuple[float, ...]:
        values = doc.get(key)
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            fail(src, f"{key} must be a list of numbers")
        return tuple(float(v) for v in values)

    fp8 = doc.get("fp8_tflops") or {}
    if not isinstance(fp8, dict) or not all(_is_number(v) for v in fp8.values()):
        fail(src, "fp8_tflops must map GPU names to numbers")
    alpha, beta = numbers("alpha"), numbers("beta")
    try:
        check_coefficients(alpha, beta)
    except ConfigError as exc:
        fail(src, str(exc))
    return TrainedPhysicsDefaults(alpha, beta, {str(k): float(v) for k, v in fp8.items()})


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _coefficient_given(o: RunOptions, name: str) -> bool:
    return name in o.explicit or not _all_zero(tuple(getattr(o, name)))


def trained_physics_spec(o: RunOptions, model: str, gpu: str, tp: int, catalog: Catalog) -> TrainedPhysicsSpec:
    """Trained-physics for ``model`` on ``gpu`` at ``tp``: the architecture from the run's config
    folder or the shipped facts, the GPU from the hardware file or the shipped specs, the shipped
    coefficients unless ``--alpha-coeffs``/``--beta-coeffs`` replace them."""
    shipped = trained_physics_defaults()
    alpha = tuple(o.alpha_coeffs) if _coefficient_given(o, "alpha_coeffs") else shipped.alpha
    beta = tuple(o.beta_coeffs) if _coefficient_given(o, "beta_coeffs") else shipped.beta
    check_coefficients(alpha, beta)
    if tp <= 0:
        raise ConfigError(f"trained-physics needs --tp > 0 (tensor-parallel GPUs per instance), got {tp}")
    if o.model_config_folder:
        path = Path(o.model_config_folder) / "config.json"
        if not path.is_file():
            raise ConfigError(f"--model-config-folder {o.model_config_folder}: no config.json there")
        raw = read_json(path, str(path))
        if not isinstance(raw, dict):
            fail(str(path), "top level must be a mapping")
        facts: Mapping[str, Any] = raw
    elif has_model_facts(model):
        facts = load_model_facts(model)
    else:
        raise ConfigError(
            f"trained-physics: no architecture facts shipped for model={model}; pass --model-config-folder, a "
            f"folder containing its config.json (facts are shipped for: {', '.join(shipped_model_names())})"
        )
    arch = TrainedPhysicsArch.from_hf(facts, model)
    tflops, bw, fp8 = _trained_physics_gpu(o.hardware_config, gpu, catalog, shipped)
    if o.ep > 1:
        log.warning("--ep %d has no effect on trained-physics step times (experts spread over the TP GPUs)", o.ep)
    return TrainedPhysicsSpec(arch, tflops, bw, tp, alpha, beta, tflops_fp8=fp8, name=gpu)


def _trained_physics_gpu(
    hardware_config: str, gpu: str, catalog: Catalog, shipped: TrainedPhysicsDefaults
) -> tuple[float, float, float]:
    """(peak TFLOP/s, peak TB/s, FP8 peak TFLOP/s or 0) of ``gpu``: from a hardware file in
    either of BLIS's ``hardware_config.json`` layouts (only those three fields are read), or
    from the shipped GPU specs and FP8 peaks."""
    if not hardware_config:
        spec = catalog.gpus.get(gpu)
        if spec is None:
            what = f"--hardware {gpu}: GPU not found" if gpu else "trained-physics needs --hardware, a GPU"
            raise ConfigError(f"{what} in the shipped GPU specs (available: {', '.join(sorted(catalog.gpus))})")
        return spec.tflops_peak, spec.bw_peak_tbs, shipped.fp8_tflops.get(gpu, 0.0)
    table = read_json(Path(hardware_config), hardware_config)
    if not isinstance(table, dict):
        fail(hardware_config, "top level must be a mapping")
    if not gpu or gpu not in table:
        what = f"--hardware {gpu}: GPU not found" if gpu else "trained-physics needs --hardware, a GPU"
        raise ConfigError(f"{what} in {hardware_config} (available: {', '.join(sorted(table))})")
    entry = table[gpu]
    if not isinstance(entry, dict):
        fail(hardware_config, f"[{gpu!r}] must be a mapping")
    figures = []
    for key in ("TFlopsPeak", "BwPeakTBs", "TFlopsFP8"):
        value = entry.get(key)
        if value is None:
            value = 0.0
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            fail(hardware_config, f"[{gpu!r}].{key} must be a finite number >= 0")
        figures.append(float(value))
    return figures[0], figures[1], figures[2]
