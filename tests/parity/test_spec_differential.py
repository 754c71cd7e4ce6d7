"""Workload specs (``--workload-spec``) against recorded runs of BLIS at commit 96a0542f.

``tests/data/reference/spec/`` holds BLIS's stdout and results files for the
cases in ``cases.json``: every arrival process and length law, every client
option, multimodal, multi-turn reasoning, lifecycle windows, ServeGen data,
inference-perf blocks, BLIS's own example specs, and the ``--seed``,
``--num-requests`` and ``--horizon`` overrides. Our stdout must equal BLIS's
line for line (metrics to 1e-9 relative) and results files request by request.

Fields of a case beyond the usual ones:

* ``servegen_dir``: the spec names its ServeGen folder ``@SERVEGEN@``; it is
  replaced by the folder's absolute path (BLIS resolves relative paths from its
  own working directory).
* ``ours_spec``: BLIS cannot run a spec with only an ``inference_perf`` block
  (it validates before expanding), so the case was recorded with a workaround
  spec; ours must give the same output for that spec and for the plain one.
* ``differs``: a BLIS bug we fix on purpose; our output must differ.
"""

from __future__ import annotations

import json

import pytest
from test_differential import numbers_close, other_lines
from testkit import DATA, HAVE_REFERENCE, REFERENCE_DATA, REFERENCE_REASON, ROOT, metric_blocks

REF = DATA / "reference" / "spec"
CASES = json.loads((REF / "cases.json").read_text())


def _spec_arg(path: str, case: dict, tmp_path) -> str:
    if path.startswith("{shared}"):
        return str(REFERENCE_DATA / path[len("{shared}/") :])
    if "servegen_dir" in case:
        text = (ROOT / path).read_text().replace("@SERVEGEN@", str(ROOT / case["servegen_dir"]))
        copy = tmp_path / "spec.yaml"
        copy.write_text(text)
        return str(copy)
    return str(ROOT / path)


def run_spec_case(case: dict, blis, tmp_path, spec: str | None = None):
    results = tmp_path / "results.json"
    args = list(case["args"])
    at = args.index("--workload-spec") + 1
    args[at] = _spec_arg(spec or args[at], case, tmp_path)
    args = [a.replace("{results}", str(results)) for a in args]
    code, out, err = blis("run", *args)
    assert code == 0, err
    return out, (json.loads(results.read_text()) if case.get("results") else None)


def assert_matches(case: dict, out: str, results) -> None:
    expected = (REF / f"{case['name']}.stdout").read_text()
    numbers_close(metric_blocks(out), metric_blocks(expected), "stdout")
    assert other_lines(out) == other_lines(expected)
    if results is not None:
        want = json.loads((REF / f"{case['name']}.results.json").read_text())
        got_rows = sorted(results.get("requests", []), key=lambda r: r["requestID"])
        want_rows = sorted(want.pop("requests", []), key=lambda r: r["requestID"])
        results.pop("requests", None)
        numbers_close(results, want, "results")
        assert len(got_rows) == len(want_rows)
        for got, row in zip(got_rows, want_rows):
            # Our rows also name the spec's client (BLIS's have no such field).
            assert got.pop("client_id", "") != "" or "tenant_id" not in row
            numbers_close(got, row, f"results[{row['requestID']}]")


def _marks(case: dict):
    shared = any(str(a).startswith("{shared}") for a in case["args"])
    return [pytest.mark.skipif(not HAVE_REFERENCE, reason=REFERENCE_REASON)] if shared else []


PARITY = [pytest.param(c, id=c["name"], marks=_marks(c)) for c in CASES if "differs" not in c]


@pytest.mark.parametrize("case", PARITY)
def test_spec_matches_reference(case, blis, tmp_path):
    out, results = run_spec_case(case, blis, tmp_path)
    assert_matches(case, out, results)


@pytest.mark.parametrize("case", [c for c in PARITY if "ours_spec" in c.values[0]], ids=lambda c: c["name"])
def test_plain_inference_perf_spec_runs_and_matches(case, blis, tmp_path):
    """BLIS rejects these plain specs ("at least one client or servegen_data path required")."""
    out, results = run_spec_case(case, blis, tmp_path, spec=case["ours_spec"])
    assert_matches(case, out, results)


@pytest.mark.parametrize("case", [c for c in CASES if "differs" in c], ids=lambda c: c["name"])
def test_fixed_reference_bug_changes_the_result(case, blis, tmp_path):
    for spec in (None, case.get("ours_spec")):
        out, _ = run_spec_case(case, blis, tmp_path, spec=spec)
        expected = (REF / f"{case['name']}.stdout").read_text()
        ours, theirs = metric_blocks(out)[-1], metric_blocks(expected)[-1]
        # Same requests and arrivals; each multi-turn round now carries its group's system prompt.
        assert ours["injected_requests"] == theirs["injected_requests"]
        assert ours["total_input_tokens"] > theirs["total_input_tokens"]
