"""The reference's golden dataset: five runs, every metric within 1e-9 relative.

The figures are BLIS's own (commit 96a0542f), copied into tests/data/golden.json.
"""

from __future__ import annotations

import json
import shlex

import pytest
from testkit import DATA, assert_close, metric_blocks

CASES = json.loads((DATA / "golden.json").read_text())["tests"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['model'].split('/')[-1]}-{i}" for i, c in enumerate(CASES)])
def test_golden_case(case, blis):
    argv = shlex.split(case["blis-cmd"])
    assert argv[:2] == ["./simulation_worker", "run"]
    code, out, err = blis("run", *argv[2:], "--log", "error")
    assert code == 0, err
    (cluster,) = metric_blocks(out)
    assert cluster["instance_id"] == "cluster"
    assert_close(cluster, case["metrics"])
