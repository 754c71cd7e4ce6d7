"""Generate deterministic CSV workload traces in BLIS trace format.

Format: header `arrival_time,request_id,model,prefill_tokens,decode_tokens`;
arrival in seconds, token arrays as JSON lists.

Run: python tests/data/traces/make_traces.py  (writes next to this file)
"""

import csv
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = 128000


def toks(rng, n):
    return [int(x) for x in rng.integers(0, VOCAB, size=n)]


def write(name, rows):
    path = os.path.join(HERE, name)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        w.writerow(["arrival_time", "request_id", "model", "prefill_tokens", "decode_tokens"])
        for i, (t, p, d) in enumerate(rows):
            w.writerow(
                [
                    f"{t:.6f}",
                    f"req_{i}",
                    "llama",
                    json.dumps(p, separators=(",", ":")),
                    json.dumps(d, separators=(",", ":")),
                ]
            )


def shared_prefix(rng):
    prefixes = [toks(rng, n) for n in (100, 220, 300)]
    rows, t = [], 0.0
    for i in range(60):
        if i > 0 and rng.random() >= 0.15:  # ~15% ties with previous arrival
            t += float(rng.uniform(0.020, 0.080))
        pre = prefixes[int(rng.integers(0, 3))]
        suffix = toks(rng, int(rng.integers(10, 201)))
        out = toks(rng, int(rng.integers(5, 151)))
        rows.append((round(t, 6), pre + suffix, out))
    return rows


def bursty(rng):
    rows, t = [], 0.0
    n_total = 80
    while len(rows) < n_total:
        burst = min(int(rng.integers(3, 16)), n_total - len(rows))
        for _ in range(burst):
            rows.append([round(t, 6), int(rng.integers(50, 1501)), int(rng.integers(1, 301))])
        t += float(rng.uniform(0.2, 1.5))
    # special cases: some outputs of exactly 1 token, one with 0 output tokens
    for idx in (3, 17, 42, 66):
        rows[idx][2] = 1
    rows[25][2] = 0
    # prompts whose lengths are exact multiples of 16
    for idx, n in ((5, 64), (11, 256), (30, 512), (50, 1024), (71, 1488), (25, 160)):
        rows[idx][1] = n
    return [(t, toks(rng, p), toks(rng, d)) for t, p, d in rows]


def small(rng):
    spec = [(0.0, 12, 5), (0.0, 30, 1), (0.015, 7, 9), (0.1, 48, 3), (0.25, 20, 12)]
    return [(t, toks(rng, p), toks(rng, d)) for t, p, d in spec]


def repeats(rng):
    """Six distinct prompts (two shorter than a block), each sent many times: prefix-affinity hits."""
    prompts = [toks(rng, n) for n in (9, 15, 160, 333, 700, 1210)]
    rows, t = [], 0.0
    for _ in range(120):
        t += float(rng.uniform(0.001, 0.012))
        p = prompts[int(rng.integers(0, len(prompts)))]
        rows.append((round(t, 6), p, toks(rng, int(rng.integers(5, 200)))))
    return rows


if __name__ == "__main__":
    write("shared_prefix.csv", shared_prefix(np.random.default_rng(1234)))
    write("bursty.csv", bursty(np.random.default_rng(5678)))
    write("small.csv", small(np.random.default_rng(91011)))
    write("repeats.csv", repeats(np.random.default_rng(1213)))
