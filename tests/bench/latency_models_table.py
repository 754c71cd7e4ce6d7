"""The three step-time models side by side: TTFT, ITL and E2E means per shipped model.

For every model in ``configs/models/`` with a blackbox coefficients row on H100 at its default
TP and vLLM version (a model without defaults: its smallest trained TP), runs one workload
under ``--latency-model blackbox``, ``roofline`` and ``trained-physics`` and prints a Markdown
table (the one in docs/hardware.md). All three runs of a model use the blackbox row's KV
blocks, so only the step-time model differs. Not a pytest test; seconds on 2 cores.

    python tests/bench/latency_models_table.py
    python tests/bench/latency_models_table.py --num-requests 500 --rate 20 --gpu H100
"""

from __future__ import annotations

import argparse
import json
import logging

from blis_gym.cli.run_command import run_options_from_args
from blis_gym.cli.runner import execute
from blis_gym.config.catalog import load_catalog
from blis_gym.config.model_facts import load_model_facts, shipped_model_names

MODELS = ("blackbox", "roofline", "trained-physics")


def metrics(args: list[str]) -> dict:
    """The cluster metrics block of an in-process ``blis run``."""
    out = execute(run_options_from_args(["--log", "error", *args]))
    block = out.split("=== Simulation Metrics ===\n")[-1]
    return json.loads(block[: block.index("\n}") + 2])


def _tp(entry) -> int:
    return entry.tp


def rows(gpu: str, num_requests: int, rate: float) -> list[tuple]:
    catalog = load_catalog()
    out = []
    for stem in shipped_model_names():
        model = str(load_model_facts(stem)["hf_id"]).lower()
        defaults = catalog.defaults_for(model)
        entry = None
        if defaults is not None:
            entry = catalog.find_coefficients(model, defaults.tp, gpu, defaults.vllm_version)
        if entry is None:  # no defaults (or no row at the default TP): the smallest TP trained
            entry = min((e for e in catalog.coefficients if e.model == model and e.gpu == gpu), key=_tp, default=None)
        if entry is None:
            continue
        common = [
            *("--model", model, "--hardware", gpu, "--tp", str(entry.tp), "--vllm-version", entry.vllm_version),
            *("--num-requests", str(num_requests), "--rate", str(rate)),
            *("--total-kv-blocks", str(entry.total_kv_blocks)),
        ]
        for name in MODELS:
            m = metrics([*common, "--latency-model", name])
            out.append((model, entry.tp, name, m["ttft_mean_ms"], m["itl_mean_ms"], m["e2e_mean_ms"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", default="H100")
    parser.add_argument("--num-requests", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0)
    a = parser.parse_args()
    logging.disable(logging.WARNING)
    print(f"{a.num_requests} requests at {a.rate:g}/s on {a.gpu}, each model at its default TP (means, ms)\n")
    print("| model | TP | latency model | TTFT | ITL | E2E |")
    print("|---|---:|---|---:|---:|---:|")
    for model, tp, name, ttft, itl, e2e in rows(a.gpu, a.num_requests, a.rate):
        print(f"| {model} | {tp} | {name} | {ttft:.2f} | {itl:.3f} | {e2e:.1f} |")


if __name__ == "__main__":
    main()
