"""Roofline step times: FLOPs and bytes of a batch against a GPU's peak compute and bandwidth.

For dense models this is the reference's analytical model, number for number:

* per request, GEMM FLOPs (QKV, output projection, attention scores over the context, a
  SwiGLU MLP), vector FLOPs (softmax, masking, RoPE) and dynamic HBM bytes (KV written for
  the new tokens, KV read for the context, activations); the weights are read once per phase;
* prefill and decode each take the slower of compute (GEMMs at the phase's MFU, vector ops at
  a tenth of peak) and memory (bytes over peak bandwidth times its efficiency), and add up;
* per-layer launch overhead, a tensor-parallel all-reduce per layer (TP > 1) and a fixed
  per-step overhead are added, and the result rounds to whole microseconds.

Every per-request term is affine in the request's new tokens ``n``, context ``s`` and
``n * (s + (n - 1) / 2)``, so the batch needs only aggregates (``BatchShape``). When the model's
figures are integers and the tensor-parallel degree a power of two, every term the reference
adds is an exactly representable float, so sums in any order are exact and aggregates give its
numbers bit for bit: the model's ``batch_view`` is then ``"shape"`` and the engine never visits
the requests. Otherwise (``"requests"``) the step is summed request by request in the
reference's order.

Mixture of experts (ours; the reference's roofline ignores experts): FLOPs count the
``experts_per_token`` routed experts, the shared experts and the router; memory counts the
expert weights a phase's ``B`` tokens touch in expectation under uniform routing,
``E * (1 - (1 - k / E) ** B)`` experts; expert weights and FLOPs divide over ``tp * ep`` GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import ConfigError
from ..gomath import go_int64, go_round
from .overheads import AlphaOverheads

_EXACT = 1 << 53  # integers below this are exact floats


@dataclass(frozen=True)
class GPUSpec:
    """GPU figures for the roofline latency model."""

    tflops_peak: float  # dense peak, TFLOP/s
    bw_peak_tbs: float  # peak HBM bandwidth, TB/s
    bw_eff_constant: float  # fraction of peak bandwidth actually reached
    t_overhead_us: float  # fixed per-step overhead, microseconds
    per_layer_overhead_us: float  # per-layer launch overhead, microseconds
    mfu_prefill: float  # model FLOPs utilisation during prefill, fraction
    mfu_decode: float  # model FLOPs utilisation during decode, fraction
    all_reduce_latency_us: float  # one tensor-parallel all-reduce, microseconds


@dataclass(frozen=True)
class ModelArch:
    """A transformer's shape, as roofline reads it (HuggingFace ``config.json`` names in comments).

    ``intermediate`` 0 means 4 x hidden (the reference's default). Experts: ``experts`` routed
    experts per MoE layer (``num_local_experts``), ``experts_per_token`` of them active
    (``num_experts_per_tok``), each an MLP of width ``expert_intermediate``; ``shared_intermediate``
    is the total width of always-active shared experts; the first ``dense_layers`` layers are
    dense MLPs of width ``intermediate``.
    """

    layers: int  # num_hidden_layers
    hidden: int  # hidden_size
    heads: int  # num_attention_heads
    kv_heads: int  # num_key_value_heads (0: as many as heads)
    intermediate: int = 0  # intermediate_size
    bytes_per_param: float = 2.0  # from torch_dtype
    vocab: int = 0  # vocab_size (informational)
    experts: int = 0
    experts_per_token: int = 0
    expert_intermediate: int = 0
    shared_intermediate: int = 0
    dense_layers: int = 0

    @property
    def is_moe(self) -> bool:
        return self.experts > 0


@dataclass(frozen=True)
class RooflineSpec:
    """What a roofline instance runs: the model, its GPU and its parallelism."""

    arch: ModelArch
    gpu: GPUSpec
    tp: int
    ep: int = 1
    name: str = ""  # the GPU's name, for messages

    def __post_init__(self) -> None:
        a, g = self.arch, self.gpu
        problems = [
            f"{what} must be > 0, got {value}"
            for what, value in (
                ("num_attention_heads", a.heads),
                ("num_hidden_layers", a.layers),
                ("hidden_size", a.hidden),
            )
            if value <= 0
        ]
        problems += [
            f"{what} must be a finite number > 0, got {value}"
            for what, value in (
                ("bytes per parameter (torch_dtype)", a.bytes_per_param),
                ("TFlopsPeak", g.tflops_peak),
                ("BwPeakTBs", g.bw_peak_tbs),
                ("BwEffConstant", g.bw_eff_constant),
                ("mfuPrefill", g.mfu_prefill),
                ("mfuDecode", g.mfu_decode),
            )
            if not (value > 0 and math.isfinite(value))
        ]
        if self.tp <= 0:
            problems.append(f"--tp must be > 0, got {self.tp}")
        if self.ep <= 0:
            problems.append(f"--ep must be > 0, got {self.ep}")
        if a.is_moe and not 0 < a.experts_per_token <= a.experts:
            problems.append(f"num_experts_per_tok must be in [1, {a.experts}], got {a.experts_per_token}")
        if problems:
            raise ConfigError(f"invalid roofline config: {'; '.join(problems)}")


class BatchShape:
    """A step's batch as roofline needs it: prefill (context, new tokens) pairs, and the decode
    requests' count and summed context."""

    __slots__ = ("prefills", "decodes", "decode_context")

    def __init__(self, prefills: Sequence[tuple[int, int]] = (), decodes: int = 0, decode_context: int = 0):
        self.prefills = prefills
        self.decodes = decodes
        self.decode_context = decode_context


class RooflineLatency(AlphaOverheads):
    """Step times from a :class:`RooflineSpec`; queueing and output-token overheads from
    ``alpha`` as in the blackbox model (all zero when roofline is selected by zero coefficients)."""

    def __init__(self, spec: RooflineSpec, alpha: tuple[float, ...] = (0.0, 0.0, 0.0)) -> None:
        self.spec = spec
        self.alpha = alpha
        a, g, tp = spec.arch, spec.gpu, spec.tp
        L, D, H = a.layers, a.hidden, a.heads
        kvh = a.kv_heads or H
        self._peak = g.tflops_peak * 1e12
        self._eff_bw = g.bw_peak_tbs * 1e12 * g.bw_eff_constant
        self._vector_peak = self._peak * 0.10
        self._tp = float(tp)
        # Overheads, in the reference's order of operations.
        layer_floor = (float(L) * g.per_layer_overhead_us) / 1e6
        comm = (float(L) * 2 * g.all_reduce_latency_us) / 1e6 if tp > 1 else 0.0
        self._floor_us = layer_floor * 1e6
        self._comm_us = comm * 1e6
        self._fixed_us = g.t_overhead_us
        bpp = a.bytes_per_param
        self.exact_aggregates = not a.is_moe and D % H == 0 and float(bpp).is_integer() and tp & (tp - 1) == 0
        # The step time depends on the batch only through its shape (see the module docstring).
        self.shape_only = self.exact_aggregates or a.is_moe
        self.batch_view = "shape" if self.shape_only else "requests"
        if self.exact_aggregates:
            dh = D // H
            dkv = kvh * dh
            ff = a.intermediate if a.intermediate > 0 else 4 * D
            b = int(bpp)
            # Per-token and per-token-per-context coefficients of the per-request terms.
            self._g1 = (2 * (D * D + 2 * D * dkv) + 2 * D * D) * L + 2 * 3 * D * ff * L
            self._g2 = 4 * H * dh * L
            self._s1 = 2 * D * L
            self._s2 = 5 * H * L
            self._m2 = 2 * L * kvh * dh * b
            self._m1 = self._m2 + L * D * b
            weights = (D * (D + 2 * dkv) + D * D + 3 * D * ff) * L * b
            self._weights = weights
            self._weight_bytes = float(weights) / self._tp
        else:
            self._weight_bytes = _float_weights(a) / self._tp

    # --- the latency-model interface ---------------------------------------------------------
    def step_time(self, batch: Iterable) -> int:
        """Step time (µs) of a running batch, classified as the reference does."""
        prefills = []
        decodes = []
        for req in batch:
            p = req.progress
            if p < req.n_in:
                prefills.append((p, req.num_new))
            elif req.n_out > 0:
                decodes.append(p)
        if not self.shape_only:
            return self._step_in_order(prefills, decodes)
        return self.step_time_shape(prefills, len(decodes), sum(decodes))

    def step_time_shape(self, prefills: Sequence[tuple[int, int]], decodes: int, decode_context: int) -> int:
        """Step time (µs) from aggregates: prefill (context, new tokens) pairs in any order, and
        the number of decoding requests and their summed context (models with ``shape_only``)."""
        p_phase = d_phase = 0.0
        if prefills:
            n = ns2 = s = 0
            for ctx, new in prefills:
                n += new
                ns2 += new * (2 * ctx + new - 1)  # 2 * n * effective context
                s += ctx
            if self.spec.arch.is_moe:
                p_phase = self._moe_phase(n, ns2 / 2, s, prefill=True)
            else:
                p_phase = self._phase(
                    2 * self._g1 * n + self._g2 * ns2,
                    2 * self._s1 * n + self._s2 * ns2,
                    self._m1 * n + self._m2 * s,
                    self.spec.gpu.mfu_prefill,
                )
        if decodes:
            if self.spec.arch.is_moe:
                d_phase = self._moe_phase(decodes, decode_context, decode_context, prefill=False)
            else:
                c = decode_context
                d_phase = self._phase(
                    2 * (self._g1 * decodes + self._g2 * c),
                    2 * (self._s1 * decodes + self._s2 * c),
                    self._m1 * decodes + self._m2 * c,
                    self.spec.gpu.mfu_decode,
                )
        return self._finish(p_phase + d_phase)

    # --- arithmetic ------------------------------------------------------------------------
    def _phase(self, gemm2: int, vector2: int, dynamic: int, mfu: float) -> float:
        """One phase's time (s) from exact doubled FLOP sums and dynamic bytes; falls back to
        plain floats (not bit-exact) beyond 2**53."""
        tp2 = 2.0 * self._tp
        if gemm2 < _EXACT and vector2 < _EXACT and dynamic + self._weights < _EXACT:
            gemm, vector = float(gemm2) / tp2, float(vector2) / tp2
        else:
            gemm, vector = gemm2 / tp2, vector2 / tp2
        compute = gemm / (self._peak * mfu) + vector / self._vector_peak
        memory = (self._weight_bytes + float(dynamic) / self._tp) / self._eff_bw
        return compute if compute > memory else memory

    def _finish(self, hardware_s: float) -> int:
        total = hardware_s * 1e6 + self._floor_us + self._comm_us + self._fixed_us
        return go_int64(go_round(total))

    def _step_in_order(self, prefills: list[tuple[int, int]], decodes: list[int]) -> int:
        """The step summed request by request in the reference's order (dense models whose
        terms are not all exact floats)."""
        g, tp = self.spec.gpu, self._tp
        p_phase = self._ordered_phase(prefills, g.mfu_prefill, tp) if prefills else 0.0
        d_phase = self._ordered_phase([(ctx, 1) for ctx in decodes], g.mfu_decode, tp) if decodes else 0.0
        return self._finish(p_phase + d_phase)

    def _ordered_phase(self, reqs: list[tuple[int, int]], mfu: float, tp: float) -> float:
        a = self.spec.arch
        gemm = vector = dynamic = 0.0
        for ctx, new in reqs:
            f_gemm, f_vec = _request_flops(a, ctx, new)
            gemm += f_gemm / tp
            vector += f_vec / tp
            dynamic += _request_dynamic_bytes(a, ctx, new) / tp
        compute = gemm / (self._peak * mfu) + vector / self._vector_peak
        memory = (self._weight_bytes + dynamic) / self._eff_bw
        return max(compute, memory)

    def _moe_phase(self, tokens: int, attn_context: float, kv_context: int, prefill: bool) -> float:
        """A phase of a mixture-of-experts model from its token count, summed n * effective
        context and summed KV context (ours; floats)."""
        a, g = self.spec.arch, self.spec.gpu
        tp, gpus = self._tp, self._tp * self.spec.ep
        L, D, H = a.layers, float(a.hidden), float(a.heads)
        kvh = float(a.kv_heads or a.heads)
        dh = D / H
        dkv = kvh * dh
        moe_layers = L - a.dense_layers
        dense_ff = float(a.intermediate if a.intermediate > 0 else 4 * a.hidden)
        attn_w = D * (D + 2 * dkv) + D * D  # per layer
        shared_w = 3 * D * a.shared_intermediate + D * a.experts  # shared experts and router
        expert_w = 3 * D * a.expert_intermediate
        # FLOPs: attention and dense/shared/router GEMMs over TP, routed experts over TP x EP.
        attn_gemm = 2 * tokens * attn_w * L + 4 * H * attn_context * dh * L
        dense_gemm = 2 * tokens * (3 * D * dense_ff * a.dense_layers + shared_w * moe_layers)
        expert_gemm = 2 * tokens * expert_w * a.experts_per_token * moe_layers
        vector = (5 * H * attn_context + 2 * tokens * D) * L
        mfu = g.mfu_prefill if prefill else g.mfu_decode
        compute = ((attn_gemm + dense_gemm) / tp + expert_gemm / gpus) / (self._peak * mfu) + (
            vector / tp
        ) / self._vector_peak
        # Bytes: resident weights read once per phase, experts only as touched.
        e, k = a.experts, a.experts_per_token
        touched = e * (1.0 - (1.0 - k / e) ** tokens) if tokens > 0 else 0.0
        weights = (
            attn_w * L + 3 * D * dense_ff * a.dense_layers + shared_w * moe_layers
        ) / tp + touched * expert_w * moe_layers / gpus
        kv = 2 * L * kvh * dh
        dynamic = (kv * tokens + kv * kv_context + L * D * tokens) / tp
        memory = (weights + dynamic) * a.bytes_per_param / self._eff_bw
        return max(compute, memory)


def _request_flops(a: ModelArch, ctx: int, new: int) -> tuple[float, float]:
    """One request's (GEMM, vector) FLOPs, in the reference's order of float operations."""
    D, L, H = float(a.hidden), float(a.layers), float(a.heads)
    kvh = float(a.kv_heads) or H
    dh = D / H
    ff = float(a.intermediate) if a.intermediate > 0 else 4.0 * D
    seq, n = float(ctx), float(new)
    dkv = kvh * dh
    gemm = (2 * n * (D * D + 2 * D * dkv) + 2 * n * D * D) * L
    eff = seq + (n - 1) / 2.0 if n > 1 else seq
    gemm += (4 * H * n * eff * dh) * L
    vector = ((5 * H * n * eff) + 2 * n * D) * L
    gemm += 2 * n * (3 * D * ff) * L
    return gemm, vector


def _request_dynamic_bytes(a: ModelArch, ctx: int, new: int) -> float:
    """One request's HBM bytes beyond the weights, as the reference computes them (its total,
    summed in key order, less the weights)."""
    D, L, H = float(a.hidden), float(a.layers), float(a.heads)
    kvh = float(a.kv_heads) or H
    dh = D / H
    bpp = float(a.bytes_per_param)
    n = float(new)
    weights = _float_weights(a)
    growth = 2 * L * kvh * dh * bpp * n
    access = 2 * L * kvh * dh * bpp * float(ctx)
    activations = L * D * bpp * n
    total = 0.0
    for v in (activations, access, growth, weights):
        total += v
    return total - weights


def _float_weights(a: ModelArch) -> float:
    D, H = float(a.hidden), float(a.heads)
    dkv = (float(a.kv_heads) or H) * (D / H)
    ff = float(a.intermediate) if a.intermediate > 0 else 4.0 * D
    return (D * (D + 2 * dkv) + D * D + 3 * D * ff) * float(a.layers) * float(a.bytes_per_param)
