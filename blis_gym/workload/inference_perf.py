"""The compact ``inference_perf`` block expanded into clients, as inference-perf describes load.

``num_unique_system_prompts`` x ``num_users_per_system_prompt`` poisson clients
share the rate equally; the users of one prompt form a prefix group (tenant
``prompt-<p>``) with a ``system_prompt_len``-token shared prefix; questions and
answers have constant lengths. Two or more ``stages`` become activity windows
(stage after stage); ``enable_multi_turn_chat`` makes each arrival a 5-round
session with 500 ms think time and accumulated context.

One difference from BLIS: ``system_prompt_len: 0`` means no shared prefix
(BLIS falls back to its 50-token default prefix).
"""

from __future__ import annotations

from .spec import (
    ActiveWindow,
    ArrivalSpec,
    ClientSpec,
    DistSpec,
    InferencePerfSpec,
    LifecycleSpec,
    MultiTurnSpec,
    ReasoningSpec,
)

CHAT_ROUNDS = 5
CHAT_THINK_TIME_US = 500_000


def _windows(ip: InferencePerfSpec) -> tuple[ActiveWindow, ...]:
    if len(ip.stages) <= 1:
        return ()
    out, offset = [], 0
    for stage in ip.stages:
        length = stage.duration * 1_000_000
        out.append(ActiveWindow(offset, offset + length))
        offset += length
    return tuple(out)


def mean_rate(ip: InferencePerfSpec) -> float:
    """Time-weighted mean of the stage rates (requests/s)."""
    total = 0
    weighted = 0.0
    for stage in ip.stages:
        total += stage.duration
        weighted += stage.rate * float(stage.duration)
    return weighted / float(total)


def expand(ip: InferencePerfSpec) -> tuple[str, tuple[ClientSpec, ...]]:
    """(category, clients) of a validated ``inference_perf`` block."""
    sp = ip.shared_prefix
    windows = _windows(ip)
    reasoning = None
    if sp.enable_multi_turn_chat:
        reasoning = ReasoningSpec(
            DistSpec("constant", {"value": 0.0}), MultiTurnSpec(CHAT_ROUNDS, CHAT_THINK_TIME_US, "accumulate")
        )
    n = sp.num_unique_system_prompts * sp.num_users_per_system_prompt
    clients = []
    for p in range(sp.num_unique_system_prompts):
        group = f"prompt-{p}"
        for u in range(sp.num_users_per_system_prompt):
            clients.append(
                ClientSpec(
                    id=f"{group}-user-{u}",
                    tenant_id=group,
                    slo_class="batch",
                    rate_fraction=1.0 / n,
                    arrival=ArrivalSpec("poisson"),
                    input_distribution=DistSpec("constant", {"value": float(sp.question_len)}),
                    output_distribution=DistSpec("constant", {"value": float(sp.output_len)}),
                    prefix_group=group if sp.system_prompt_len > 0 else "",
                    prefix_length=sp.system_prompt_len,
                    reasoning=reasoning,
                    lifecycle=LifecycleSpec(windows) if windows else None,
                )
            )
    return ("reasoning" if sp.enable_multi_turn_chat else "language"), tuple(clients)
