"""Model architecture facts for roofline: read from a HuggingFace ``config.json`` or from the
facts shipped in ``configs/models/`` (one file per model, schema ``blis-gym/model/v1``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from .datafiles import fail, read_json, read_yaml, shipped_dir

MODEL_SCHEMA = "blis-gym/model/v1"
MODELS_DIR = "models"

# torch_dtype -> bytes per parameter, as BLIS's roofline model counts them.
BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "fp8": 1, "int4": 1, "nf4": 1}
# The integer facts read first, in this order; roofline reads a missing intermediate_size as
# 4 x hidden and ignores vocab_size, as the reference does, so only the files we ship need them.
_SHIPPED_FACTS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "vocab_size")
_REQUIRED_FACTS = ("num_hidden_layers", "hidden_size", "num_attention_heads")
_OPTIONAL_FACTS = (
    "head_dim",
    "max_position_embeddings",
    "tie_word_embeddings",
    # mixture-of-experts layouts, under the names different families use
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "n_shared_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "decoder_sparse_step",
    "first_k_dense_replace",
    "moe_layer_freq",
)


def model_facts_from_hf(path: str | Path) -> dict[str, Any]:
    """The architecture facts roofline needs, from a HuggingFace ``config.json``.

    Keys keep HuggingFace's names; ``bytes_per_param`` is derived from ``torch_dtype``.
    A missing ``num_key_value_heads`` means multi-head attention (as many as attention heads).
    """
    src = str(path)
    raw = read_json(Path(path), src)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        fail(src, "top level must be a mapping")
    if isinstance(raw.get("text_config"), dict):
        raw = {**raw, **raw["text_config"]}  # multimodal: the text model is what runs
    facts: dict[str, Any] = {}
    archs = raw.get("architectures")
    if isinstance(archs, list) and archs:
        facts["architecture"] = archs[0]
    if "model_type" in raw:
        facts["model_type"] = raw["model_type"]
    for key in _SHIPPED_FACTS:
        value = raw.get(key)
        if value is None and key not in _REQUIRED_FACTS:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            fail(src, f"{key} must be an integer")
        facts[key] = value
    kv_heads = raw.get("num_key_value_heads")
    facts["num_key_value_heads"] = kv_heads if kv_heads else raw["num_attention_heads"]
    facts.update({key: raw[key] for key in _OPTIONAL_FACTS if raw.get(key) is not None})
    dtype = raw.get("torch_dtype")
    if dtype not in BYTES_PER_PARAM:
        fail(src, f"torch_dtype {dtype!r} is not one of {', '.join(BYTES_PER_PARAM)}")
    facts["torch_dtype"] = dtype
    facts["bytes_per_param"] = BYTES_PER_PARAM[dtype]
    return facts


@functools.lru_cache(maxsize=1)
def _model_index() -> tuple[dict[str, Mapping[str, Any]], tuple[str, ...]]:
    """Shipped model facts by lower-cased file stem and hf id, and the known names."""
    index: dict[str, Mapping[str, Any]] = {}
    names = []
    folder = shipped_dir().joinpath(MODELS_DIR)
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml"):
            continue
        src = str(item)
        doc = read_yaml(item, src, shipped=True)
        if not isinstance(doc, dict) or doc.get("schema") != MODEL_SCHEMA:
            fail(src, f"schema must be {MODEL_SCHEMA!r}")
        for key in ("name", "hf_id", *_SHIPPED_FACTS, "num_key_value_heads", "bytes_per_param"):
            if key not in doc:
                fail(src, f"{key} is missing")
        facts = MappingProxyType({k: v for k, v in doc.items() if k != "schema"})
        stem = item.name[: -len(".yaml")]
        names.append(stem)
        index[stem.lower()] = facts
        index[str(doc["hf_id"]).lower()] = facts
    return index, tuple(names)


def load_model_facts(name_or_hf_id: str) -> Mapping[str, Any]:
    """Shipped architecture facts for a model, by file name (e.g. ``qwen3-14b``) or hf id
    (e.g. ``Qwen/Qwen3-14B``), case-insensitively. Raises ConfigError for an unknown model."""
    index, names = _model_index()
    facts = index.get(name_or_hf_id.lower())
    if facts is None:
        raise ConfigError(f"unknown model {name_or_hf_id!r} for roofline facts (known: {', '.join(names)})")
    return facts


def has_model_facts(name_or_hf_id: str) -> bool:
    """Whether architecture facts are shipped for this model (file name or hf id, any case)."""
    return name_or_hf_id.lower() in _model_index()[0]


def shipped_model_names() -> tuple[str, ...]:
    """The shipped models' file names (e.g. ``qwen3-14b``)."""
    return _model_index()[1]
