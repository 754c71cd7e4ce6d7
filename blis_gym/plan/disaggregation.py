"""The prefill/decode flags resolved: pool sizes, per-pool hardware, the transfer model.

Per-pool hardware (``--prefill-hardware/--prefill-tp``, ``--decode-hardware/--decode-tp``)
becomes a heterogeneous fleet (``--instance-pool``) laid out as the pools are: prefill
instances first, then decode, then shared ones (which take the decode pool's settings, as
upstream BLIS's do), then any instances past the pools (the cluster's own settings).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from ..config.catalog import Catalog
from ..config.model_facts import load_model_facts, model_facts_from_hf
from ..config.pd import PDConfig, kv_bytes_per_token
from ..errors import ConfigError
from ..policies import PD_DECIDER, ROUTING
from ..policies.scorers import parse_scorers
from .latency import with_model_defaults
from .options import RunOptions

log = logging.getLogger("blis_gym")

_POOL_FLAGS = ("prefill_hardware", "decode_hardware", "prefill_tp", "decode_tp")
_PD_FLAGS = (
    "pd_decider",
    "pd_prefix_threshold",
    "pd_transfer_bandwidth",
    "pd_transfer_base_latency",
    "pd_transfer_contention",
    "prefill_routing_scorers",
    "decode_routing_scorers",
    *_POOL_FLAGS,
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def pd_enabled(o: RunOptions) -> bool:
    return (o.prefill_instances, o.decode_instances, o.prefill_decode_instances) != (0, 0, 0)


def check_pd_flags(o: RunOptions) -> None:
    """Flag checks that need no catalog (run with the other flag checks)."""
    PD_DECIDER.validate(o.pd_decider)
    for name in ("prefill_instances", "decode_instances", "prefill_decode_instances", "prefill_tp", "decode_tp"):
        if getattr(o, name) < 0:
            raise ConfigError(f"{_flag(name)} must be >= 0, got {getattr(o, name)}")
    if not pd_enabled(o):
        given = [_flag(k) for k in _PD_FLAGS if getattr(o, k) != getattr(RunOptions(), k)]
        if given:
            log.warning("%s: no effect without --prefill-instances/--decode-instances", ", ".join(given))
        return
    # The pools' shapes and the transfer model, checked before anything is loaded.
    cfg = PDConfig(
        o.prefill_instances,
        o.decode_instances,
        o.prefill_decode_instances,
        prefix_threshold=o.pd_prefix_threshold,
        bandwidth=o.pd_transfer_bandwidth * 1000.0,
        base_latency=o.pd_transfer_base_latency * 1000.0,
    )
    if not o.instance_pool and cfg.size > o.num_instances:
        raise ConfigError(
            f"--prefill-instances ({cfg.prefill}) + --decode-instances ({cfg.decode}) + "
            f"--prefill-decode-instances ({cfg.shared}) = {cfg.size} exceeds --num-instances ({o.num_instances})"
        )
    if cfg.size < o.num_instances and not o.instance_pool:
        log.warning("instances %d..%d are in no pool and serve nothing", cfg.size, o.num_instances - 1)
    if o.instance_pool and any(getattr(o, k) for k in _POOL_FLAGS):
        raise ConfigError("--instance-pool sets every instance's hardware; drop --prefill-/--decode-hardware and -tp")
    if o.kv_cpu_blocks > 0:
        raise ConfigError("--kv-cpu-blocks (a CPU KV tier) is not supported with prefill/decode pools")
    if o.routing_policy in ROUTING.oracles() or o.routing_policy == "rl":
        raise ConfigError(
            f"--routing-policy {o.routing_policy} cannot route prefill/decode pools "
            f"(valid with pools: {', '.join(ROUTING.names())})"
        )
    if o.pd_decider != "prefix-threshold" and "pd_prefix_threshold" in o.explicit:
        log.warning("--pd-prefix-threshold applies only to --pd-decider prefix-threshold; ignored")


def pd_pool_options(o: RunOptions, catalog: Catalog) -> RunOptions:
    """``o`` with per-pool hardware written as ``--instance-pool`` (unchanged without it)."""
    if not pd_enabled(o) or not any(getattr(o, k) for k in _POOL_FLAGS):
        return o
    _, gpu, tp, _ = with_model_defaults(o, catalog)
    pre = (o.prefill_hardware or gpu, o.prefill_tp or tp)
    dec = (o.decode_hardware or gpu, o.decode_tp or tp)
    size = o.prefill_instances + o.decode_instances + o.prefill_decode_instances
    parts = [(pre, o.prefill_instances), (dec, o.decode_instances + o.prefill_decode_instances)]
    parts.append(((gpu, tp), max(o.num_instances - size, 0)))
    for (hw, t), _ in parts:
        if not hw or t <= 0:
            raise ConfigError(
                f"--prefill-/--decode-hardware need a GPU and a TP for model {o.model} (give --hardware and --tp)"
            )
    text = ",".join(f"{hw}:{t}:x{n}" for (hw, t), n in parts if n > 0)
    return replace(o, instance_pool=text, hardware="", tp=0, explicit=o.explicit - {"hardware", "tp"})


def pd_config(o: RunOptions, catalog_loader: Callable[[], Catalog]) -> Optional[PDConfig]:
    """The validated pools and transfer model (None without pools)."""
    if not pd_enabled(o):
        return None
    per_token = 0.0
    if o.pd_decider != "never":
        _, _, tp, _ = with_model_defaults(o, catalog_loader())
        tp = o.prefill_tp or tp or 1
        try:
            if o.model_config_folder:
                facts = model_facts_from_hf(Path(o.model_config_folder) / "config.json")
            else:
                facts = load_model_facts(o.model.lower())
        except ConfigError as e:
            raise ConfigError(
                f"--pd-decider {o.pd_decider}: sizing KV transfers needs the model's architecture "
                f"(--model-config-folder): {e}"
            ) from None
        per_token = kv_bytes_per_token(
            facts["num_hidden_layers"],
            facts["num_attention_heads"],
            facts.get("num_key_value_heads", 0),
            facts["hidden_size"],
            facts.get("head_dim", 0),
            float(facts["bytes_per_param"]),
            tp,
        )
    return PDConfig(
        o.prefill_instances,
        o.decode_instances,
        o.prefill_decode_instances,
        decider=o.pd_decider,
        prefix_threshold=o.pd_prefix_threshold,
        bandwidth=o.pd_transfer_bandwidth * 1000.0,
        base_latency=o.pd_transfer_base_latency * 1000.0,
        contention=o.pd_transfer_contention,
        kv_bytes_per_token=per_token,
        prefill_scorers=parse_scorers(o.prefill_routing_scorers, "--prefill-routing-scorers"),
        decode_scorers=parse_scorers(o.decode_routing_scorers, "--decode-routing-scorers"),
    )
