"""Decision tracing (``--trace-level decisions``) and counterfactual regret.

Every admission and routing decision is recorded. With ``counterfactual_k``
> 0, each routing record also keeps the top-k instances and the regret of the
choice: the best candidate's score minus the chosen one's, never negative.
Scores are the policy's own composite scores when it has them (weighted
routing); otherwise minus the effective load, so a less loaded instance ranks
higher. Candidates rank by score, descending, then instance id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from ..forking import Forkable
from ..policies.base import Snapshot


@dataclass(frozen=True)
class AdmissionRecord:
    request_id: str
    clock: int  # ticks
    admitted: bool
    reason: str


@dataclass(frozen=True)
class CandidateScore:
    """One ranked instance with the snapshot fields the router saw."""

    instance_id: str
    score: float
    queue_depth: int
    batch_size: int
    pending_requests: int
    kv_utilization: float
    free_kv_blocks: int


@dataclass(frozen=True)
class RoutingRecord:
    request_id: str
    clock: int  # ticks
    chosen_instance: str
    reason: str
    scores: Optional[tuple] = None  # per instance, in instance order (None: policy has no scores)
    candidates: tuple = ()  # top-k CandidateScore, best first
    regret: float = 0.0


def candidate_scores(scores: Optional[Sequence[float]], snaps: Sequence[Snapshot]) -> list:
    """The score each instance is ranked by: the policy's, or minus its effective load."""
    if scores is not None:
        return list(scores)
    return [-float(s.effective_load) for s in snaps]


def counterfactual(
    chosen: int, scores: Optional[Sequence[float]], snaps: Sequence[Snapshot], k: int
) -> tuple[tuple, float]:
    """(top-k candidates, regret of choosing instance index ``chosen``)."""
    if k <= 0 or not snaps:
        return (), 0.0
    ranked = candidate_scores(scores, snaps)
    order = sorted(range(len(snaps)), key=lambda i: (-ranked[i], snaps[i].id))
    top = tuple(
        CandidateScore(
            snaps[i].id,
            ranked[i],
            snaps[i].queue_depth,
            snaps[i].batch_size,
            snaps[i].pending_requests,
            snaps[i].kv_utilization,
            snaps[i].free_kv_blocks,
        )
        for i in order[:k]
    )
    regret = ranked[order[0]] - ranked[chosen]
    return top, (regret if regret > 0 else 0.0)


@dataclass
class DecisionTrace(Forkable):
    """All decisions of one run, in the order they were made."""

    _FORK_FLAT = frozenset({"admissions", "routings"})  # frozen records

    counterfactual_k: int = 0
    admissions: list = field(default_factory=list)
    routings: list = field(default_factory=list)

    def record_admission(self, request_id: str, clock: int, admitted: bool, reason: str) -> None:
        self.admissions.append(AdmissionRecord(request_id, clock, admitted, reason))

    def record_routing(
        self,
        request_id: str,
        clock: int,
        chosen: int,
        reason: str,
        scores: Optional[Sequence[float]],
        snaps: Sequence[Snapshot],
    ) -> None:
        candidates, regret = counterfactual(chosen, scores, snaps, self.counterfactual_k)
        self.routings.append(
            RoutingRecord(
                request_id,
                clock,
                snaps[chosen].id,
                reason,
                tuple(scores) if scores is not None else None,
                candidates,
                regret,
            )
        )


@dataclass(frozen=True)
class TraceSummary:
    total_decisions: int  # admission decisions
    admitted: int
    rejected: int
    mean_regret: float
    max_regret: float
    unique_targets: int
    target_distribution: dict  # instance id -> requests routed there


def summarize(trace: DecisionTrace) -> TraceSummary:
    admitted = sum(1 for a in trace.admissions if a.admitted)
    targets: dict[str, int] = {}
    total = 0.0
    worst = 0.0
    for r in trace.routings:
        targets[r.chosen_instance] = targets.get(r.chosen_instance, 0) + 1
        total += r.regret
        if r.regret > worst:
            worst = r.regret
    mean = total / len(trace.routings) if trace.routings else 0.0
    return TraceSummary(
        len(trace.admissions), admitted, len(trace.admissions) - admitted, mean, worst, len(targets), targets
    )


def summary_lines(s: TraceSummary) -> list[str]:
    """The ``=== Trace Summary ===`` section as the reference prints it."""
    lines = [
        "=== Trace Summary ===",
        f"Total Decisions: {s.total_decisions}",
        f"  Admitted: {s.admitted}",
        f"  Rejected: {s.rejected}",
        f"Unique Targets: {s.unique_targets}",
    ]
    if s.target_distribution:
        lines.append("Target Distribution:")
        lines += [f"  {k}: {s.target_distribution[k]}" for k in sorted(s.target_distribution)]
    lines += [f"Mean Regret: {s.mean_regret:.6f}", f"Max Regret: {s.max_regret:.6f}"]
    return lines
