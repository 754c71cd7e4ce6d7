"""Trained-physics step times: roofline-style basis terms scaled by one global set of fitted
coefficients (upstream BLIS's newer default latency model, ``--latency-model trained-physics``).

A step's time is a weighted sum of physical estimates, each in microseconds, plus fixed costs::

    step = b1 * prefill compute  + b9  * prefill KV writes     (b1 * max(both) with < 9 values)
         + b2 * decode compute   + b10 * decode KV traffic     (b2 * max(both) with < 10 values)
         + b3 * weight reads
         + b4 * tensor-parallel all-reduces (attention, dense FFN, MoE FFN at DP = 1)
         + b11 * MoE dispatch/combine (DP > 1)
         + b5 * layers + b6 * requests in the batch + b7
         + b8 * MoE layers (interleaved MoE/dense models only)

The estimates divide FLOPs by the GPU's peak (its FP8 peak for one-byte weights) and bytes by its
peak bandwidth, with no efficiency factors: the coefficients absorb those. Expert weights and
FLOPs spread evenly over the MoE group (TP x DP GPUs). Per-request overheads come from three
alpha values: a constant queueing delay, a per-output-token time, and a post-decode overhead
added once to the end-to-end latency of a request that produced output.

The arithmetic follows upstream's in the same float64 order, so step times match it to the
microsecond (``tests/data/trained_physics/cases.json`` holds recorded upstream results).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import ConfigError

#: torch_dtype (or dtype) -> bytes per parameter of the compute/activation type.
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "fp8": 1, "int4": 1, "nf4": 1}

#: MoE dispatch/combine backends (vLLM's VLLM_ALL2ALL_BACKEND names) and the volume each moves:
#: "gather" backends move every token's hidden state, "all2all" ones each token's top-k copies.
MOE_COMM_BACKENDS = {
    "naive": "gather",
    "allgather_reducescatter": "gather",
    "pplx": "all2all",
    "deepep_high_throughput": "all2all",
    "deepep_low_latency": "all2all",
    "mori": "all2all",
    "flashinfer_all2allv": "all2all",
}
DEFAULT_MOE_COMM = "allgather_reducescatter"

ALPHA_COUNT = 3
BETA_MIN, BETA_MAX = 7, 11
KV_BYTES = 2.0  # KV cache entries are 16-bit whatever the weights' precision

# HuggingFace names holding the routed-expert count, in the order they are tried.
_EXPERT_KEYS = ("num_experts", "moe_num_experts", "n_routed_experts", "num_local_experts", "num_routed_experts")
_MIN_EXPERTS = 2  # one "expert" is a dense model
_W_BITS = re.compile(r"(?:^|[.\-_/])w(\d+)a\d+(?:$|[.\-_])", re.IGNORECASE | re.ASCII)
_FP8_NAME = re.compile(r"(?:^|[.\-_/])fp8(?:$|[.\-_])", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class TrainedPhysicsArch:
    """What trained-physics reads of a model (HuggingFace ``config.json`` names in comments).

    ``experts`` is 0 for a dense model. ``weight_bytes`` 0 means the weights are stored in the
    compute type (``bytes_per_param``); quantized models store them narrower.
    """

    layers: int  # num_hidden_layers
    hidden: int  # hidden_size
    heads: int  # num_attention_heads
    kv_heads: int  # num_key_value_heads (0: as many as heads)
    intermediate: int  # intermediate_size
    bytes_per_param: float  # torch_dtype
    weight_bytes: float = 0.0  # quantization_config, or the model name (w4a16, fp8)
    experts: int = 0  # routed experts per MoE layer
    experts_per_token: int = 0  # num_experts_per_tok
    expert_intermediate: int = 0  # moe_intermediate_size (0: intermediate)
    shared_intermediate: int = 0  # total width of the always-active shared experts
    interleave_step: int = 0  # interleave_moe_layer_step: one MoE layer in every step + 1
    dense_intermediate: int = 0  # intermediate_size_mlp: dense layers' width (0: intermediate)

    @property
    def is_moe(self) -> bool:
        return self.experts >= _MIN_EXPERTS

    @classmethod
    def from_hf(cls, config: Mapping[str, Any], model_name: str = "") -> "TrainedPhysicsArch":
        """From a HuggingFace ``config.json`` mapping (or shipped facts under the same names),
        read as upstream reads it; ``model_name`` is the fallback for the weights' precision."""
        raw = dict(config)
        if isinstance(raw.get("text_config"), dict):
            raw.update(raw["text_config"])  # multimodal: the text model is what runs

        def num(key: str) -> int:
            value = raw.get(key)
            return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

        def first(*keys: str) -> int:
            return next((v for v in map(num, keys) if v != 0), 0)

        heads = num("num_attention_heads")
        dtype = raw.get("torch_dtype")
        if not isinstance(dtype, str):
            dtype = raw.get("dtype")
        intermediate = first("intermediate_size", "ffn_hidden_size")
        expert_ff = num("moe_intermediate_size")
        shared = num("shared_expert_intermediate_size")
        if shared <= 0:
            shared = num("n_shared_experts") * (expert_ff or intermediate) if num("n_shared_experts") > 0 else 0
        quant = raw.get("quantization_config")
        weight_bytes = _quantized_weight_bytes(quant) if isinstance(quant, dict) else 0.0
        if weight_bytes == 0:
            weight_bytes = weight_bytes_from_name(model_name)
        return cls(
            layers=num("num_hidden_layers"),
            hidden=num("hidden_size"),
            heads=heads,
            kv_heads=first("num_key_value_heads", "num_kv_heads", "multi_query_group_num") or heads,
            intermediate=intermediate,
            bytes_per_param=float(DTYPE_BYTES.get(dtype, 0)) if isinstance(dtype, str) else 0.0,
            weight_bytes=weight_bytes,
            experts=next((v for v in map(num, _EXPERT_KEYS) if v >= _MIN_EXPERTS), 0),
            experts_per_token=num("num_experts_per_tok"),
            expert_intermediate=expert_ff,
            shared_intermediate=shared,
            interleave_step=num("interleave_moe_layer_step"),
            dense_intermediate=num("intermediate_size_mlp"),
        )


def _quantized_weight_bytes(q: Mapping[str, Any]) -> float:
    """Bytes per weight from a ``quantization_config`` (0: not recognised)."""
    bits = q.get("bits")
    if isinstance(bits, float) or (isinstance(bits, int) and not isinstance(bits, bool)):
        n = int(bits)
    elif isinstance(bits, str) and re.fullmatch(r"[+-]?[0-9]+", bits):
        n = int(bits)
    else:
        n = 0
    if n > 0:
        return n / 8.0
    method = q.get("quant_method")
    method = method.lower() if isinstance(method, str) else ""
    if method == "fp8":
        return 1.0
    if method == "compressed-tensors" and isinstance(q.get("config_groups"), dict):
        groups = q["config_groups"]
        for key in sorted(groups):
            weights = groups[key].get("weights") if isinstance(groups[key], dict) else None
            nb = weights.get("num_bits") if isinstance(weights, dict) else None
            if isinstance(nb, (int, float)) and not isinstance(nb, bool) and nb > 0:
                return float(nb) / 8.0
    return 0.0


def weight_bytes_from_name(name: str) -> float:
    """Bytes per weight implied by a model id's naming (``...w4a16`` -> 0.5, ``...FP8...`` -> 1)."""
    m = _W_BITS.search(name)
    if m and int(m.group(1)) > 0:
        return int(m.group(1)) / 8.0
    return 1.0 if _FP8_NAME.search(name) else 0.0


def check_coefficients(alpha: tuple[float, ...], beta: tuple[float, ...]) -> None:
    """ConfigError unless ``alpha`` has 3 and ``beta`` 7 to 11 finite non-negative values."""
    if len(alpha) != ALPHA_COUNT:
        raise ConfigError(f"--alpha-coeffs: trained-physics takes {ALPHA_COUNT} values, got {len(alpha)}")
    if not BETA_MIN <= len(beta) <= BETA_MAX:
        raise ConfigError(f"--beta-coeffs: trained-physics takes {BETA_MIN} to {BETA_MAX} values, got {len(beta)}")
    for flag, values in (("--alpha-coeffs", alpha), ("--beta-coeffs", beta)):
        for i, c in enumerate(values):
            if not (math.isfinite(c) and c >= 0):
                raise ConfigError(f"{flag}[{i}]: trained-physics needs finite values >= 0, got {c}")


@dataclass(frozen=True)
class TrainedPhysicsSpec:
    """What a trained-physics instance runs: model, GPU figures, parallelism, coefficients.

    ``dp`` (data-parallel ranks of one MoE engine) and ``moe_comm`` only change MoE models.
    """

    arch: TrainedPhysicsArch
    tflops_peak: float  # BF16/FP16 dense peak, TFLOP/s
    bw_peak_tbs: float  # HBM peak, TB/s
    tp: int
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    tflops_fp8: float = 0.0  # FP8 dense peak, TFLOP/s (0: none)
    dp: int = 1
    moe_comm: str = DEFAULT_MOE_COMM
    name: str = ""  # the GPU's name, for messages

    def __post_init__(self) -> None:
        check_coefficients(self.alpha, self.beta)
        a = self.arch
        if self.moe_comm not in MOE_COMM_BACKENDS:
            raise ConfigError(
                f"trained-physics: unknown MoE comm backend {self.moe_comm!r} (valid: {', '.join(MOE_COMM_BACKENDS)})"
            )
        if self.tp <= 0:
            raise ConfigError(f"trained-physics needs --tp > 0, got {self.tp}")
        for what, value in (
            ("num_hidden_layers", a.layers),
            ("num_attention_heads", a.heads),
            ("hidden_size", a.hidden),
            ("intermediate_size", a.intermediate),
        ):
            if value <= 0:
                raise ConfigError(f"trained-physics: {what} must be > 0, got {value}")
        for what, value in (("num_attention_heads", a.heads), ("num_key_value_heads", a.kv_heads or a.heads)):
            if value % self.tp:
                raise ConfigError(f"trained-physics: {what} ({value}) must be divisible by --tp ({self.tp})")
        gpu = self.name or "the GPU"
        for what, value in (("peak TFLOP/s", self.tflops_peak), ("peak bandwidth (TB/s)", self.bw_peak_tbs)):
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"trained-physics: {gpu}'s {what} must be a finite number > 0, got {value}")
        if not (a.bytes_per_param > 0 and math.isfinite(a.bytes_per_param)):
            raise ConfigError(
                f"trained-physics: bytes per parameter (torch_dtype) must be > 0, got {a.bytes_per_param}"
            )
        if a.is_moe and a.experts_per_token <= 0:
            raise ConfigError(
                f"trained-physics: num_experts_per_tok must be > 0 for {a.experts} experts, got {a.experts_per_token}"
            )
        if self.dp < 1 or (self.dp > 1 and not a.is_moe):
            raise ConfigError(f"trained-physics: data parallelism > 1 needs a mixture-of-experts model, got {self.dp}")


class TrainedPhysicsLatency:
    """Step times and per-request overheads from a :class:`TrainedPhysicsSpec` (see module doc).

    The prefill attention term reads each prefilling request's input length, which batch
    aggregates do not carry: the engine hands the model every request (``batch_view``).
    """

    batch_view = "requests"

    def __init__(self, spec: TrainedPhysicsSpec) -> None:
        self.spec = spec
        a = spec.arch
        self.alpha = tuple(spec.alpha)
        beta = list(spec.beta[:BETA_MAX]) + [0.0] * (BETA_MAX - len(spec.beta))
        if len(spec.beta) < BETA_MAX:
            beta[10] = beta[3]  # dispatch/combine defaults to the all-reduce coefficient
        self._b = tuple(float(b) for b in beta)
        self._split_prefill = len(spec.beta) >= 9
        self._split_decode = len(spec.beta) >= 10
        moe = a.is_moe
        if moe and a.interleave_step > 0:
            n_moe = a.layers // (a.interleave_step + 1)
        else:
            n_moe = a.layers if moe else 0
        self._n_moe = n_moe
        self._n_dense = a.layers - n_moe
        self._interleaved = moe and a.interleave_step > 0
        head_dim = a.hidden // a.heads
        self._L = float(a.layers)
        self._d = float(a.hidden)
        self._dkv = float((a.kv_heads or a.heads) * head_dim)
        self._dh = float(head_dim)
        self._tp = float(spec.tp)
        self._keff = float(max(1, a.experts_per_token))
        self._h_gpu = float(a.heads) / self._tp
        self._dp = float(spec.dp)
        self._tpdp = self._tp * self._dp
        self._group = float(spec.tp * spec.dp if moe else spec.tp)
        self._ff_moe = float(a.expert_intermediate if a.expert_intermediate > 0 else a.intermediate)
        self._ff_dense = float(a.dense_intermediate if a.dense_intermediate > 0 else a.intermediate)
        self._shared = float(a.shared_intermediate)
        weight_bpp = a.weight_bytes if a.weight_bytes > 0 else a.bytes_per_param
        self._wbpp = weight_bpp
        self._abpp = a.bytes_per_param
        tflops = spec.tflops_fp8 if weight_bpp == 1.0 and spec.tflops_fp8 > 0 else spec.tflops_peak
        self._flops_us = tflops * 1e6
        self._bw_us = spec.bw_peak_tbs * 1e6
        self._gather = MOE_COMM_BACKENDS[spec.moe_comm] == "gather"

    # --- per-request overheads --------------------------------------------------------------
    def queueing_time(self, n_in: int) -> int:
        return _ticks(self.alpha[0])

    def output_token_time(self) -> int:
        return _ticks(self.alpha[2])

    def post_decode_time(self) -> int:
        """Added once to the end-to-end latency of a request with output tokens."""
        return _ticks(self.alpha[1])

    def scheduling_time(self) -> int:
        return 0

    def preemption_time(self) -> int:
        return 0

    # --- step time --------------------------------------------------------------------------
    def step_time(self, batch: Iterable) -> int:
        """Step time (µs) of a running batch: requests before the end of their input prefill,
        the others with output tokens decode (one token each); every request counts once."""
        size = 0
        pf_tokens = dc_tokens = ctx = attn = 0.0
        four_h = 4 * self._h_gpu
        for req in batch:
            size += 1
            n_in = req.n_in
            if req.progress < n_in:
                t = float(req.num_new)
                pf_tokens += t
                attn += four_h * t * (float(n_in) + t / 2) * self._dh
            elif req.n_out > 0:
                dc_tokens += 1
                ctx += float(req.progress)
        if size == 0:
            return 1
        return self.step_time_aggregates(size, pf_tokens, attn, dc_tokens, ctx)

    def step_time_aggregates(self, size: int, pf_tokens: float, pf_attn: float, dc_tokens: float, ctx: float) -> int:
        """Step time (µs) from a batch's aggregates: ``size`` requests, ``pf_tokens`` prefill
        tokens whose attention terms sum to ``pf_attn`` (``4 * heads/tp * t * (input + t/2) *
        head_dim`` per request, summed in batch order), ``dc_tokens`` decoders of summed context
        ``ctx``."""
        L, d, dkv, tpdp, dp = self._L, self._d, self._dkv, self._tpdp, self._dp
        b = self._b
        proj = 2 * d + 2 * dkv
        pf_compute = pf_kv = 0.0
        if pf_tokens > 0:
            flops = L * 2 * pf_tokens * d * proj / tpdp
            flops += L * pf_attn / dp
            flops += self._ffn_flops(pf_tokens)
            pf_compute = flops / self._flops_us
            pf_kv = L * 2 * (dkv / tpdp) * pf_tokens * KV_BYTES / self._bw_us
        dc_compute = dc_kv = 0.0
        if dc_tokens > 0:
            flops = L * 2 * dc_tokens * d * proj / tpdp
            flops += L * 4 * self._h_gpu * ctx * self._dh / dp
            flops += self._ffn_flops(dc_tokens)
            dc_compute = flops / self._flops_us
            dc_kv = L * 2 * (dkv / tpdp) * KV_BYTES * (ctx + dc_tokens) / self._bw_us
        weights = self._weight_time()
        tokens = pf_tokens + dc_tokens
        reduce = 0.0
        dispatch = 0.0
        if self.spec.tp > 1:
            reduce = self._all_reduce(L, tokens) / dp + self._all_reduce(float(self._n_dense), tokens) / dp
            if self._n_moe > 0 and self.spec.dp == 1:
                reduce += self._all_reduce(float(self._n_moe), tokens)
        if self.spec.arch.is_moe and self.spec.dp > 1:
            dispatch = self._dispatch(tokens) * float(self._n_moe)
        if self._split_prefill:
            prefill = b[0] * pf_compute + b[8] * pf_kv
        else:
            prefill = b[0] * max(pf_compute, pf_kv)
        if self._split_decode:
            decode = b[1] * dc_compute + b[9] * dc_kv
        else:
            decode = b[1] * max(dc_compute, dc_kv)
        interleaved = 1.0 if self._interleaved else 0.0
        total = (
            prefill
            + decode
            + b[2] * weights
            + b[3] * reduce
            + b[10] * dispatch
            + b[4] * L
            + b[5] * float(size)
            + b[6]
            + b[7] * interleaved * float(self._n_moe)
        )
        return max(1, _ticks(total))

    # --- terms ------------------------------------------------------------------------------
    def _ffn_flops(self, tokens: float) -> float:
        """FFN FLOPs of ``tokens`` on the busiest GPU: routed experts over the MoE group, shared
        experts and dense layers over TP x DP."""
        d = self._d
        flops = 0.0
        if self._n_moe > 0:
            per_gpu = tokens * self._keff / self._group
            flops += float(self._n_moe) * per_gpu * 6 * d * self._ff_moe
            if self._shared > 0:
                flops += float(self._n_moe) * tokens * 6 * d * self._shared / self._tpdp
        if self._n_dense > 0:
            flops += float(self._n_dense) * tokens * 1 * 6 * d * self._ff_dense / self._tpdp
        return flops

    def _weight_time(self) -> float:
        """Microseconds to read one GPU's share of the weights (experts: its resident share)."""
        L, d, bpp, tp = self._L, self._d, self._wbpp, self._tp
        attn = L * d * (2 * d + 2 * self._dkv) * bpp / tp
        ffn = 0.0
        if self._n_moe > 0:
            experts = float(self.spec.arch.experts) / self._group
            ffn += float(self._n_moe) * experts * 3 * d * self._ff_moe * bpp
            if self._shared > 0:
                ffn += float(self._n_moe) * 3 * d * self._shared * bpp / tp
        if self._n_dense > 0:
            ffn += float(self._n_dense) * 1 * 3 * d * self._ff_dense * bpp / tp
        return (attn + ffn) / self._bw_us

    def _all_reduce(self, units: float, tokens: float) -> float:
        """Ring all-reduce of ``units`` hidden-state tensors per token over TP (µs, raw)."""
        frac = float(self.spec.tp - 1) / float(self.spec.tp)
        return units * tokens * self._d * self._abpp * 2.0 * frac / self._bw_us

    def _dispatch(self, tokens: float) -> float:
        """One MoE layer's dispatch + combine exchange over the DP x TP group (µs, raw)."""
        g = self._group
        if self._gather:
            return (tokens / self._dp) * (g - 1) / g * 2 * self._d * self._abpp / self._bw_us
        routed = (tokens / self._dp) * self._keff * (g - 1) / g * 2
        return routed * self._d * self._abpp / self._bw_us


_MAX_TICKS = 2**63 - 1


def _ticks(v: float) -> int:
    """Microseconds as an int64 tick count, truncated toward zero (NaN and overflow: the largest)."""
    if math.isnan(v) or v >= 9223372036854775808.0:
        return _MAX_TICKS
    return int(v)
