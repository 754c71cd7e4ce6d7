"""The routing-comparison example reproduces the reference's figures for the same runs."""

from __future__ import annotations

import re

import pytest
from testkit import DATA, metric_blocks

from blis_gym.examples.routing_comparison import PROFILES, run_profile, table

# Reference runs of the same three profiles (recorded by BLIS itself).
RECORDED = {
    "queue-depth:1": "weighted_qd",
    "kv-utilization:1": "weighted_kv",
    "default (pa:3,qd:2,kv:2)": "weighted_default_5000",
}


def _recorded(name: str):
    text = (DATA / "reference" / f"{name}.stdout").read_text()
    dist = tuple(int(n) for n in re.findall(r"^  instance_\d+: (\d+)$", text, re.M))
    return dist, metric_blocks(text)[-1]["ttft_p99_ms"]


@pytest.fixture(scope="module")
def rows():
    return {label: run_profile(label, opts) for label, opts in PROFILES}


@pytest.mark.parametrize("label", [p[0] for p in PROFILES])
def test_profile_matches_reference(rows, label):
    row = rows[label]
    dist, p99 = _recorded(RECORDED[label])
    assert row.distribution == dist
    assert row.ttft_p99_ms == pytest.approx(p99, rel=1e-9)
    assert sum(row.distribution) == 1000


def test_kv_utilization_alone_skews_load_and_tail_latency(rows):
    qd, kv = rows["queue-depth:1"], rows["kv-utilization:1"]
    assert max(kv.distribution) - min(kv.distribution) > 10 * (max(qd.distribution) - min(qd.distribution))
    assert kv.ttft_p99_ms > 3 * qd.ttft_p99_ms
    text = table(list(rows.values()))
    assert "kv-utilization:1" in text and "TTFT p99" in text
