"""Production traces against BLIS itself: BLIS cannot read Mooncake, Azure or BurstGPT traces, so
each case's window was written as BLIS's CSV trace (shared blocks as shared tokens,
``workload.traces.write_trace``) and BLIS's stdout on that CSV recorded. Our replay of the
window from the trace itself must print the same, byte for byte."""

from __future__ import annotations

import json

import pytest
from testkit import DATA, ROOT

REFERENCE = DATA / "reference" / "public_traces"
CASES = json.loads((REFERENCE / "cases.json").read_text())
MODEL = "meta-llama/llama-3.1-8b-instruct"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_trace_window_prints_what_blis_prints_for_it_as_csv(blis, case):
    trace = case["trace"]
    if trace.startswith("tests/"):
        trace = str(ROOT / trace)
    start, duration, speedup = case["window"]
    code, out, err = blis(
        "run",
        "--model",
        MODEL,
        "--log",
        "error",
        "--workload",
        "traces",
        "--workload-traces-filepath",
        trace,
        "--trace-start",
        str(start),
        "--trace-duration",
        str(duration),
        "--trace-speedup",
        str(speedup),
        *case["cluster"],
    )
    assert code == 0, err
    assert out == (REFERENCE / f"{case['name']}.stdout").read_text()
