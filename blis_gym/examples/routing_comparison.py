"""Why scorer choice matters: three weighted-routing profiles at 5000 requests/s.

Reproduces BLIS's README table (llama-3.1-8b-instruct, 4 instances, 1000
requests). ``queue-depth`` sees pending requests the moment they are routed;
``kv-utilization`` only changes when a batch step allocates blocks, so at this
rate dozens of decisions in a row see the same stale picture and pile onto a
few instances.

Run: ``python -m blis_gym.examples.routing_comparison [--with-baselines]``
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Sequence

from ..cluster.trace import summarize
from ..plan import RunOptions, resolve, simulate
from ..report.summary import metrics_block

MODEL = "meta-llama/llama-3.1-8b-instruct"
PROFILES: tuple[tuple[str, dict], ...] = (
    ("queue-depth:1", {"routing_policy": "weighted", "routing_scorers": "queue-depth:1"}),
    ("kv-utilization:1", {"routing_policy": "weighted", "routing_scorers": "kv-utilization:1"}),
    ("default (pa:3,qd:2,kv:2)", {"routing_policy": "weighted"}),
)
BASELINES: tuple[tuple[str, dict], ...] = (
    ("round-robin", {"routing_policy": "round-robin"}),
    ("least-loaded", {"routing_policy": "least-loaded"}),
)


@dataclass(frozen=True)
class Row:
    label: str
    distribution: tuple[int, ...]  # requests routed to each instance, in instance order
    ttft_p99_ms: float


def run_profile(
    label: str, options: dict, num_instances: int = 4, num_requests: int = 1000, rate: float = 5000.0, seed: int = 42
) -> Row:
    opts = RunOptions(
        model=MODEL,
        num_instances=num_instances,
        num_requests=num_requests,
        rate=rate,
        seed=seed,
        trace_level="decisions",
        **options,
    )
    result = simulate(resolve(opts))
    targets = summarize(result.trace).target_distribution
    dist = tuple(targets.get(iid, 0) for iid in result.instance_ids)
    return Row(label, dist, metrics_block("cluster", result.aggregate)["ttft_p99_ms"])


def table(rows: Sequence[Row]) -> str:
    lines = [f"{'Configuration':<26} {'Distribution':<22} {'TTFT p99 (ms)':>13}", f"{'-' * 26} {'-' * 22} {'-' * 13}"]
    for r in rows:
        dist = " / ".join(f"{n:>3}" for n in r.distribution)
        lines.append(f"{r.label:<26} {dist:<22} {r.ttft_p99_ms:>13,.0f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-baselines", action="store_true", help="also run round-robin and least-loaded")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.getLogger("blis_gym").setLevel(logging.ERROR)  # the model's default GPU/TP notices
    configs = PROFILES + (BASELINES if args.with_baselines else ())
    print(f"Model: {MODEL} | 4 instances | 1000 requests | rate=5000 req/s | seed={args.seed}\n")
    print(table([run_profile(label, opts, seed=args.seed) for label, opts in configs]))


if __name__ == "__main__":
    main()
