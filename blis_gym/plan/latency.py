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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ..config.catalog import Catalog, CoefficientEntry, load_hardware_config
from ..config.model_facts import has_model_facts, load_model_facts, model_facts_from_hf, shipped_model_names
from ..engine.roofline import GPUSpec, ModelArch, RooflineSpec
from ..errors import ConfigError
from .options import RunOptions

log = logging.getLogger("blis_gym")

LATENCY_MODELS = ("auto", "blackbox", "roofline")
DEFAULT_TOTAL_KV_BLOCKS = 1000000
ZERO_ALPHA = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class LatencyChoice:
    """The resolved step-time model: ``roofline`` set means roofline (``beta`` unused)."""

    model: str  # the model id the run reports (lower-cased where the defaults file was read)
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    total_kv_blocks: int
    roofline: Optional[RooflineSpec] = None


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
