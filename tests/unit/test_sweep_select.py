"""A sweep's ``select:`` (serial): candidates ranked on the training points, the finalists judged
again on validation points, the winner written as a policy bundle that ``blis run`` reads."""

from __future__ import annotations

import csv

import pytest
from testkit import metric_blocks
from testkit.sweep import table, write

from blis_gym.config.bundle import shipped_bundles
from blis_gym.envs import load_scenario
from blis_gym.plan.options import HELD_OUT_SEED
from blis_gym.sweep import load_sweep
from blis_gym.sweep.select import SELECTION_CSV, VALIDATION_DIR, rank

pytest.importorskip("pyarrow.parquet", reason="needs the distributed extra (pyarrow)")

PROFILES = (
    "queue-depth:1",
    "precise-prefix-cache:2,queue-depth:1,kv-utilization:1",
    "prefix-affinity:3,queue-depth:2,kv-utilization:2",
)
TUNE = f"""
base:
  model: meta-llama/llama-3.1-8b-instruct
  num_instances: 3
  rate: 300
  num_requests: 60
  prefix_tokens: 512
  prefix_groups: 6
  total_kv_blocks: 600
  routing_policy: weighted
axes:
  - routing_scorers: [{", ".join(f'"{p}"' for p in PROFILES)}]
  - seed: [1, 2]
select:
  among: routing_scorers
  metric: ttft_p99_ms
  finalists: 2
  validate: {{seed: [11, 12, 13]}}
  bundle: tuned.yaml
"""


def mean(rows, profile, metric="ttft_p99_ms"):
    picked = [r[metric] for r in rows if r["routing_scorers"] == profile]
    return sum(picked) / len(picked), len(picked)


def test_the_winner_is_the_best_finalist_on_validation_and_its_bundle_runs_as_the_profile(blis, tmp_path):
    out = tmp_path / "out"
    code, _, err = blis("sweep", str(write(tmp_path, TUNE)), "--out", str(out), "--serial", "--no-progress")
    assert code == 0, err
    training = table(out)
    validation = table(out / VALIDATION_DIR)
    assert len(training) == 6
    by_training = sorted(PROFILES, key=lambda p: mean(training, p)[0])
    finalists = by_training[:2]
    # the validation round runs only the finalists, on the validation seeds
    assert {r["routing_scorers"] for r in validation} == set(finalists)
    assert sorted({r["seed"] for r in validation}) == [11, 12, 13]
    winner = min(finalists, key=lambda p: mean(validation, p)[0])
    with open(out / SELECTION_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["value"] for r in rows if r["round"] == "training"] == by_training
    chosen = [r for r in rows if r["winner"] == "1"]
    assert len(chosen) == 1 and chosen[0]["value"] == winner and chosen[0]["round"] == "validation"
    assert float(chosen[0]["mean_ttft_p99_ms"]) == mean(validation, winner)[0]
    assert f"selected routing_scorers = {winner}" in err
    # the bundle is the winner: blis run with it prints what blis run with the profile prints
    args = validation[0]["blis_run_args"].replace(f"--routing-scorers {validation[0]['routing_scorers']}", "")
    code, with_bundle, err = blis("run", *args.split(), "--policy-config", str(out / "tuned.yaml"))
    assert code == 0, err
    code, with_flag, err = blis("run", *args.split(), "--routing-scorers", winner)
    assert code == 0, err
    assert metric_blocks(with_bundle) == metric_blocks(with_flag)


def test_rank_leaves_out_values_with_a_failed_point_and_keeps_axis_order_on_ties():
    rows = [
        {"p": "a", "m": 2.0, "error": ""},
        {"p": "b", "m": 1.0, "error": ""},
        {"p": "c", "m": 0.5, "error": "boom"},
        {"p": "a", "m": 2.0, "error": ""},
        {"p": "d", "m": 1.0, "error": ""},
        {"p": "c", "m": 0.5, "error": ""},
    ]
    standings, excluded = rank(rows, "p", "m")
    assert [(s.value, s.mean, s.points) for s in standings] == [("b", 1.0, 1), ("d", 1.0, 1), ("a", 2.0, 2)]
    assert excluded == ["c"]


BASE = "base: {model: m}\naxes:\n  - routing_scorers: ['queue-depth:1']\n  - seed: [1]\n"


@pytest.mark.parametrize(
    "select, needle",
    [
        ("select: {among: rate}", "select.among: rate is not an axis of its own"),
        ("select: {among: routing_scorers, metric: speed}", "select.metric: unknown metric 'speed'"),
        ("select: {among: routing_scorers, finalists: 0}", "select.finalists: expected a whole number >= 1"),
        ("select: {among: routing_scorers, validate: {routing_scorers: [a]}}", "is not one of the other axes"),
        ("select: {among: routing_scorers, validate: {seed: []}}", "select.validate.seed: empty axis"),
        ("select: {among: seed, bundle: t.yaml}", "a policy bundle holds a routing_scorers winner"),
        ("select: {among: routing_scorers, bundle: a/t.yaml}", "expected a file name ending in .yaml"),
        ("select: {among: routing_scorers, pick: 1}", "unknown key 'pick'"),
        ("select: [1]", "select: expected a mapping"),
    ],
)
def test_a_bad_select_names_the_key(blis, tmp_path, select, needle):
    path = write(tmp_path, BASE + select + "\n")
    code, _, err = blis("sweep", str(path), "--out", str(tmp_path / "out"), "--serial")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


def test_a_select_loads_with_defaults(tmp_path):
    spec = load_sweep(write(tmp_path, BASE + "select: {among: routing_scorers}\n"))
    sel = spec.selection
    assert (sel.among, sel.metric, sel.finalists, dict(sel.validate), sel.bundle) == (
        "routing_scorers",
        "ttft_p99_ms",
        3,
        {},
        "",
    )
    assert load_sweep(write(tmp_path, BASE, "plain.yaml")).selection is None


@pytest.mark.parametrize("scenario", ["prefix-heavy", "mooncake-conversation"])
def test_a_tuning_sweep_plays_its_scenario_on_seeds_below_the_held_out_ones(scenario):
    spec = load_sweep(f"tune-{scenario}")
    run = load_scenario(scenario).run
    assert set(run.explicit) - {"seed"} == set(spec.base)  # every option the scenario sets, no more
    for key, value in spec.base.items():
        assert getattr(run, key) == value, key
    training = {p.axis_values["seed"] for p in spec.points}
    validation = set(spec.selection.validate["seed"])
    assert not training & validation and max(training | validation) < HELD_OUT_SEED
    assert spec.selection.bundle == f"tuned-{scenario}.yaml" and f"tuned-{scenario}" in shipped_bundles()
