"""``blis sweep`` without Ray (``--serial``): sweep files, points equal to ``blis run``, failures,
resume, charts, errors (on Ray: tests/integration/ray/test_sweep_ray.py)."""

from __future__ import annotations

import os
import shlex
import sys

import pytest
from testkit import ROOT, metric_blocks
from testkit.sweep import SMALL, table, write

from blis_gym.report.fitness import go_fixed
from blis_gym.sweep import load_sweep
from blis_gym.sweep.execute import run_sweep
from blis_gym.sweep.metrics import METRICS, slo_column
from blis_gym.sweep.spec import shipped_sweeps
from blis_gym.sweep.table import JOURNAL, PARQUET, read_journal

pytest.importorskip("pyarrow.parquet", reason="needs the distributed extra (pyarrow)")


# --- the sweep file -----------------------------------------------------------------------------


def test_axes_cross_in_order_first_outermost(tmp_path):
    spec = load_sweep(write(tmp_path, SMALL))
    assert spec.columns == ("routing_policy", "num_instances")
    assert [dict(p.axis_values) for p in spec.points] == [
        {"routing_policy": "round-robin", "num_instances": 1},
        {"routing_policy": "round-robin", "num_instances": 2},
        {"routing_policy": "least-loaded", "num_instances": 1},
        {"routing_policy": "least-loaded", "num_instances": 2},
    ]
    assert [p.index for p in spec.points] == [0, 1, 2, 3]
    assert all(p.options["num_requests"] == 40 and p.options["rate"] == 20.0 for p in spec.points)
    assert len({p.key for p in spec.points}) == 4


def test_zip_varies_options_together_and_mapping_axes_cross(tmp_path):
    spec = load_sweep(
        write(
            tmp_path,
            """
base: {model: qwen/qwen2.5-7b-instruct, latency-model: roofline}
axes:
  - zip: {hardware: [H100, A100-SXM], tp: [1, 2]}
  - seed: [1, 2, 3]
""",
        )
    )
    assert spec.columns == ("hardware", "tp", "seed")
    assert len(spec.points) == 6
    assert {(p.options["hardware"], p.options["tp"]) for p in spec.points} == {("H100", 1), ("A100-SXM", 2)}
    assert spec.points[0].options["latency_model"] == "roofline"  # dashes read as underscores
    mapping = load_sweep(write(tmp_path, "base: {model: m}\naxes: {rate: [1, 2], seed: [5, 6]}\n", "m.yaml"))
    assert [(p.options["rate"], p.options["seed"]) for p in mapping.points] == [(1.0, 5), (1.0, 6), (2.0, 5), (2.0, 6)]


def test_relative_paths_are_read_from_the_sweep_files_folder(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "w.yaml").write_text("version: '1'\n", "utf-8")
    spec = load_sweep(write(tmp_path, "base: {model: m}\naxes:\n  - workload_spec: [specs/w.yaml, mixed-slo]\n"))
    assert [p.options["workload_spec"] for p in spec.points] == [str(tmp_path / "specs" / "w.yaml"), "mixed-slo"]


def test_shipped_sweeps_load_by_name():
    assert set(shipped_sweeps()) >= {"routing-capacity", "hardware-tp"}
    routing = load_sweep("routing-capacity")
    assert routing.columns[:3] == ("rate", "routing_policy", "num_instances")
    hardware = load_sweep("hardware-tp")
    assert hardware.columns == ("hardware", "tp")
    assert all(p.options["latency_model"] == "roofline" for p in hardware.points)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("base: {model: m}\naxes:\n  - rat: [1, 2]\n", "axes[0]: unknown option 'rat'"),
        ("base: {model: m}\naxes:\n  - rate: []\n", "axes[0].rate: empty axis"),
        ("base: {model: m}\naxes:\n  - rate: 5\n", "axes[0].rate: expected a list of values"),
        ("base: {model: m}\naxes:\n  - rate: [1, fast]\n", "axes[0].rate[1]: expected float, got 'fast'"),
        ("base: {modle: m}\naxes:\n  - rate: [1]\n", "base: unknown option 'modle'"),
        ("base: {model: m, rate: 2}\naxes:\n  - rate: [1]\n", "axes[0]: rate is also set in base"),
        ("base: {model: m}\naxes:\n  - rate: [1]\n  - rate: [2]\n", "axes[1]: rate is already an axis"),
        (
            "base: {model: m}\naxes:\n  - zip: {hardware: [H100], tp: [1, 2]}\n",
            "axes[0].zip: lists of different lengths",
        ),
        ("base: {model: m}\naxes: []\n", "axes: expected a non-empty list"),
        ("base: {model: m}\n", "axes: expected a non-empty list"),
        ("base: {model: m}\naxis:\n  - rate: [1]\n", "unknown key 'axis'"),
        ("base: {model: m}\naxes:\n  - results_path: [a.json]\n", "unknown option 'results_path'"),
        ("base: [1, 2]\naxes:\n  - rate: [1]\n", "base: expected a mapping"),
        ("base: {model: m}\naxes:\n  - rate: [1]\n    seed: [2]\n", "axes[0]: expected one 'option: [values]'"),
        ("base: {model: m\naxes: [\n", "sweep file"),
    ],
)
def test_a_bad_sweep_file_gives_one_error_line_naming_the_key(blis, tmp_path, text, needle):
    path = write(tmp_path, text)
    code, out, err = blis("sweep", str(path), "--out", str(tmp_path / "out"), "--serial")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert str(path) in lines[0]
    assert not (tmp_path / "out").exists()


def test_missing_sweep_file_lists_the_shipped_ones(blis, tmp_path):
    code, _, err = blis("sweep", str(tmp_path / "nope.yaml"), "--serial", "--out", str(tmp_path / "o"))
    assert code == 2 and "no such file or shipped sweep" in err and "routing-capacity" in err


# --- points -------------------------------------------------------------------------------------


def _blis_run(blis, args: str) -> tuple[dict, str]:
    code, out, err = blis("run", *shlex.split(args))
    assert code == 0, err
    return metric_blocks(out)[-1], out


def test_each_point_equals_blis_run_with_its_arguments(blis, tmp_path):
    """Every metric of every row is exactly what ``blis run`` prints for the row's arguments:
    policies, a policy bundle, a workload spec with SLO classes, seeds and fitness weights."""
    path = write(
        tmp_path,
        """
base:
  model: meta-llama/llama-3.1-8b-instruct
  num_requests: 60
  fitness_weights: "throughput:1,p99_ttft:1"
axes:
  - zip:
      workload_spec: ["", mixed-slo]
      rate: [30, 30]
  - zip:
      routing_policy: [least-loaded, weighted]
      policy_config: ["", token-bucket]
  - seed: [3, 4]
""",
    )
    code, _, err = blis("sweep", str(path), "--out", str(tmp_path / "out"), "--serial")
    assert code == 0, err
    rows = table(tmp_path / "out")
    assert len(rows) == 8 and [r["point"] for r in rows] == list(range(8))
    saw_slo = saw_rejected = False
    for row in rows:
        assert row["error"] == "" and row["node"] == "local"
        block, out = _blis_run(blis, row["blis_run_args"])
        # The names the table uses are the block's own, in its order.
        assert [k for k in block if k != "instance_id"] == [k for k in METRICS if k in block]
        for key in METRICS:
            assert row[key] == block.get(key, 0), (row["point"], key)
        assert f"Score: {go_fixed(row['fitness'], 6)}" in out
        rejected = row["rejected_requests"]
        saw_rejected |= rejected > 0
        assert (f"Rejected Requests: {rejected}" in out) == (rejected > 0)
        if row["workload_spec"]:
            saw_slo = True
            for cls in ("batch", "interactive", "realtime"):
                mean, p99 = row[slo_column(cls, "ttft_mean_ms")], row[slo_column(cls, "ttft_p99_ms")]
                n = row[slo_column(cls, "completed")]
                assert f"TTFT: mean={go_fixed(mean * 1e3, 2)} p99={go_fixed(p99 * 1e3, 2)}" in out
                assert f"E2E:  mean={go_fixed(row[slo_column(cls, 'e2e_mean_ms')] * 1e3, 2)}" in out
                assert f"(n={n})" in out
        else:
            assert row[slo_column("batch", "ttft_mean_ms")] is None
    assert saw_slo and saw_rejected


def test_a_failing_point_gives_an_error_row_and_the_sweep_goes_on(blis, tmp_path):
    path = write(tmp_path, SMALL.replace("[round-robin, least-loaded]", "[round-robin, no-such-policy]"))
    code, _, err = blis("sweep", str(path), "--out", str(tmp_path / "out"), "--serial")
    assert code == 1
    rows = table(tmp_path / "out")
    failed = [r for r in rows if r["error"]]
    assert [r["point"] for r in failed] == [2, 3]
    assert all("no-such-policy" in r["error"] and r["completed_requests"] is None for r in failed)
    assert all(r["completed_requests"] == 40 for r in rows if not r["error"])
    summary = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(summary) == 2 and summary[0].startswith(
        "failed: point 2 (routing_policy=no-such-policy, num_instances=1): "
    )
    assert "4 points (4 run" in err and "2 failed" in err
    # the CSV says the same
    csv_lines = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("point,routing_policy,num_instances,blis_run_args,")


def test_a_crash_in_a_point_is_caught_with_where_it_happened(tmp_path, monkeypatch):
    from blis_gym.sweep import point as point_mod

    spec = load_sweep(write(tmp_path, SMALL))
    calls = {"n": 0}
    real = point_mod.simulate

    def flaky(plan, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ZeroDivisionError("boom")
        return real(plan, *a, **k)

    monkeypatch.setattr(point_mod, "simulate", flaky)
    report = run_sweep(spec, tmp_path / "out", serial=True)
    assert len(report.failures) == 1 and "crash: ZeroDivisionError: boom (test_sweep.py:" in report.failures[0]
    assert [bool(r["error"]) for r in table(tmp_path / "out")] == [False, True, False, False]


# --- resume -------------------------------------------------------------------------------------


def test_rerun_skips_finished_points_and_a_torn_journal_line(tmp_path):
    spec = load_sweep(write(tmp_path, SMALL))
    whole = tmp_path / "whole"
    run_sweep(spec, whole, serial=True)
    part = tmp_path / "part"
    part.mkdir()
    lines = (whole / JOURNAL).read_text().splitlines(keepends=True)
    (part / JOURNAL).write_text(lines[0] + lines[2] + lines[3][:25], "utf-8")  # last line torn
    report = run_sweep(spec, part, serial=True)
    assert (report.resumed, report.ran) == (2, 2)
    assert (part / PARQUET).read_bytes() == (whole / PARQUET).read_bytes()
    assert (part / "results.csv").read_text() == (whole / "results.csv").read_text()
    assert len(read_journal(part)) == 4
    again = run_sweep(spec, part, serial=True)  # all done: nothing runs, same table
    assert (again.resumed, again.ran) == (4, 0)
    assert (part / PARQUET).read_bytes() == (whole / PARQUET).read_bytes()


# --- charts and errors ----------------------------------------------------------------------------


def test_plot_draws_one_chart_per_metric_and_an_overview(blis, tmp_path):
    pytest.importorskip("matplotlib", reason="needs the plot extra")
    path = write(tmp_path, SMALL.replace("num_instances: [1, 2]", "num_instances: [1, 2]\n  - seed: [1, 2]"))
    code, _, err = blis("sweep", str(path), "--out", str(tmp_path / "out"), "--serial", "--plot")
    assert code == 0, err
    plots = tmp_path / "out" / "plots"
    for name in ("ttft_p99_ms", "e2e_mean_ms", "responses_per_sec", "overview"):
        data = (plots / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "drew" in err


def test_without_pyarrow_the_command_says_how_to_install(blis, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    code, _, err = blis("sweep", str(write(tmp_path, SMALL)), "--out", str(tmp_path / "o"), "--serial")
    assert code == 2 and "pip install 'blis-gym[distributed]'" in err


def test_without_ray_the_command_says_how_to_install_or_to_run_serially(blis, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = blis("sweep", str(write(tmp_path, SMALL)), "--out", str(tmp_path / "o"))
    assert code == 2 and err.strip() == (
        "error: blis sweep (or --serial, which runs without Ray) needs Ray: pip install 'blis-gym[distributed]'"
    )
    assert not (tmp_path / "o").exists()
    code, _, err = blis("sweep", str(write(tmp_path, SMALL)), "--out", str(tmp_path / "o"), "--serial")
    assert code == 0, err


def test_out_that_is_a_file_is_refused(blis, tmp_path):
    (tmp_path / "f").write_text("x")
    code, _, err = blis("sweep", str(write(tmp_path, SMALL)), "--out", str(tmp_path / "f"), "--serial")
    assert code == 2 and "is a file, not a folder" in err


def test_help_explains_the_sweep_file(blis):
    code, out, _ = blis("sweep", "--help")
    assert code == 0
    for flag in ("--out", "--workers", "--address", "--serial", "--plot", "--timeout"):
        assert flag in out


def test_example_sweeps_are_documented():
    docs = "".join(p.read_text("utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))])
    for name in shipped_sweeps():
        assert f"configs/sweeps/{name}.yaml" in docs or f"blis sweep {name}" in docs
    assert os.path.isfile(ROOT / "configs" / "sweeps" / "routing-capacity.yaml")
