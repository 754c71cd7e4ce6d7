"""Goodput and SLO attainment (upstream's counting), the --slo-* flags, specs' goodput targets."""

from __future__ import annotations

import json

import pytest
from test_cli_errors import assert_one_error, base, invoke

from blis_gym.config.slo import SLOTarget, merge_targets, parse_duration_ms, parse_slo_flag
from blis_gym.engine.metrics import InstanceMetrics, RequestRecord
from blis_gym.errors import ConfigError
from blis_gym.plan import RunOptions, resolve, simulate
from blis_gym.report.goodput import compute_goodput
from blis_gym.report.render import results_json, stdout_text

MODEL = "meta-llama/llama-3.1-8b-instruct"


@pytest.mark.parametrize(
    "text, ms",
    [("100ms", 100.0), ("1.5s", 1500.0), ("250us", 0.25), ("250µs", 0.25), ("1m30s", 90_000.0), ("2h", 7.2e6)],
)
def test_durations_read_as_go_reads_them(text, ms):
    assert parse_duration_ms(text) == pytest.approx(ms, rel=1e-12)


@pytest.mark.parametrize("text", ["", "5", "5xs", "ms", "1.5.2s", "5 ms"])
def test_malformed_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration_ms(text)


@pytest.mark.parametrize(
    "text, words",
    [
        ("500ms", ["--slo-ttft", "class=duration"]),
        ("=500ms", ["--slo-ttft", "empty class"]),
        ("a=0ms", ["--slo-ttft", "> 0"]),
        ("a=-1s", ["--slo-ttft", "> 0"]),
        ("a=10parsecs", ["--slo-ttft", "invalid duration"]),
        ("a=100ms,", ["--slo-ttft", "invalid pair"]),
    ],
)
def test_malformed_slo_flags_name_the_flag(text, words):
    with pytest.raises(ConfigError) as err:
        parse_slo_flag("--slo-ttft", text)
    for w in words:
        assert w in str(err.value)


def test_flags_beat_trace_header_beat_spec_per_dimension():
    spec = {"a": SLOTarget(ttft_ms=1, e2e_ms=9), "b": SLOTarget(itl_ms=3)}
    header = {"a": SLOTarget(ttft_ms=2)}
    got = merge_targets({"ttft": {}, "itl": {"c": 4.0}, "e2e": {"a": 7.0}}, header, spec)
    assert got == {"a": SLOTarget(2, 0, 7), "b": SLOTarget(0, 3, 0), "c": SLOTarget(0, 4, 0)}
    assert merge_targets({"ttft": {}, "itl": {}, "e2e": {}}) == {}


def _metrics(rows, injected_end=10_000_000):
    """Merged metrics of completed requests: rows of (id, class, ttft, itl, e2e) in ticks."""
    m = InstanceMetrics()
    m.sim_ended = injected_end
    for rid, cls, ttft, itl, e2e in rows:
        m.requests[rid] = RequestRecord(rid, 0.0, 10, 10, slo_class=cls)
        m.e2es[rid] = float(e2e)
        if ttft is not None:
            m.ttfts[rid] = float(ttft)
        if itl is not None:
            m.itls[rid] = float(itl)
    m.completed = len(rows)
    return m


def test_a_request_is_good_only_when_every_gated_dimension_holds():
    rows = [
        ("r0", "", 50_000, 5_000, 500_000),  # all within
        ("r1", "", 150_000, 5_000, 500_000),  # TTFT misses
        ("r2", "", 50_000, 25_000, 500_000),  # ITL misses
        ("r3", "", 50_000, 5_000, 2_500_000),  # E2E misses
        ("r4", "", 100_000, 20_000, 2_000_000),  # exactly at every limit: met
        ("r5", "", None, None, 100_000),  # no TTFT or ITL record: misses both
    ]
    targets = {"default": SLOTarget(ttft_ms=100, itl_ms=20, e2e_ms=2000)}
    g = compute_goodput(_metrics(rows), {"": 8}, targets)  # 2 more arrived and never completed
    c = g.classes["default"]
    assert (c.good, c.injected) == (2, 8)
    assert g.attainment == 2 / 8
    assert g.goodput_rps == 2 / 10.0
    assert c.by_dim == {"ttft": 4 / 6, "itl": 4 / 6, "e2e": 5 / 6}


def test_classes_without_targets_are_left_out_of_both_counts():
    rows = [("a", "critical", 10_000, 1, 10), ("b", "batch", 10_000_000, 1, 10), ("c", "", 10_000, 1, 10)]
    g = compute_goodput(_metrics(rows), {"critical": 1, "batch": 5, "": 1}, {"critical": SLOTarget(ttft_ms=50)})
    assert list(g.classes) == ["critical"]
    assert g.attainment == 1.0
    fields = g.json_fields()
    assert fields["per_class"]["critical"]["count"] == 1
    assert fields["per_class"]["critical"]["slo_attainment_by_dim"] == {"ttft": 1.0}


def test_exactly_k_of_n_requests_meet_a_threshold_set_between_them():
    """A real run: TTFT limit at the k-th smallest TTFT, so exactly k requests meet it."""
    o = RunOptions(model=MODEL, num_requests=40, rate=30.0, log="error")
    plan = resolve(o)
    result = simulate(plan)
    ttfts = sorted(result.aggregate.ttfts.values())
    n = len(ttfts)
    for k in (1, 17, n):
        limit_ms = ttfts[k - 1] / 1e3
        o = RunOptions(model=MODEL, num_requests=40, rate=30.0, log="error", slo_ttft=f"default={limit_ms!r}ms")
        plan_k = resolve(o)
        doc = json.loads(results_json(simulate(plan_k), plan_k.slo_targets))
        assert doc["per_class"]["default"]["count"] == n
        assert doc["slo_attainment"] == pytest.approx(k / n, rel=1e-12)
        assert doc["goodput_rps"] == pytest.approx(k / doc["vllm_estimated_duration_s"], rel=1e-12)


def test_rejected_requests_count_as_misses():
    o = RunOptions(
        model=MODEL,
        num_requests=60,
        rate=200.0,
        admission_policy="token-bucket",
        token_bucket_capacity=3000.0,
        token_bucket_refill_rate=1000.0,
        slo_e2e="default=1h",
        log="error",
    )
    plan = resolve(o)
    result = simulate(plan)
    assert result.rejected > 0
    text = stdout_text(result, slo_targets=plan.slo_targets)
    block = json.loads(text.split("=== Simulation Metrics ===")[-1].split("===")[0])
    assert block["per_class"]["default"]["count"] == 60
    assert block["slo_attainment"] == pytest.approx(result.aggregate.completed / 60, rel=1e-12)


def test_without_targets_the_output_is_unchanged(blis):
    _, plain, _ = blis("run", "--log", "error", "--model", MODEL, "--num-requests", "20")
    _, with_slo, _ = blis("run", "--log", "error", "--model", MODEL, "--num-requests", "20", "--slo-e2e", "default=1h")
    assert "goodput_rps" not in plain and "Per-SLO" not in plain
    assert with_slo.startswith(plain.rstrip("\n").rsplit("\n}", 1)[0])  # same block, fields added
    assert '"slo_attainment": 1' in with_slo and "=== Per-SLO Metrics ===" in with_slo


def test_a_spec_carries_goodput_targets_and_the_flag_overrides_them(tmp_path, blis):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: '1'\nseed: 3\naggregate_rate: 20\nnum_requests: 30\n"
        "goodput_slo_targets:\n  critical: {e2e_ms: 1}\n  standard: {e2e_ms: 3600000}\n"
        "clients:\n"
        "  - {id: a, rate_fraction: 0.5, slo_class: critical, arrival: {process: poisson},\n"
        "     input_distribution: {type: constant, params: {value: 64}},\n"
        "     output_distribution: {type: constant, params: {value: 16}}}\n"
        "  - {id: b, rate_fraction: 0.5, slo_class: standard, arrival: {process: poisson},\n"
        "     input_distribution: {type: constant, params: {value: 64}},\n"
        "     output_distribution: {type: constant, params: {value: 16}}}\n"
    )
    _, out, _ = blis("run", "--log", "error", "--model", MODEL, "--workload-spec", str(spec))
    block = json.loads(out.split("=== Simulation Metrics ===")[-1].split("===")[0])
    assert block["per_class"]["critical"]["slo_attainment"] == 0.0
    assert block["per_class"]["standard"]["slo_attainment"] == 1.0
    _, out, _ = blis(*base("--workload-spec", str(spec), "--slo-e2e", "critical=1h"))
    block = json.loads(out.split("=== Simulation Metrics ===")[-1].split("===")[0])
    assert block["slo_attainment"] == 1.0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--slo-ttft", "500ms"], ["--slo-ttft", "class=duration"]),
        (["--slo-itl", "a=0s"], ["--slo-itl", "> 0"]),
        (["--slo-e2e", "a=3 parsecs"], ["--slo-e2e", "invalid duration"]),
        (["--preemption-policy", "lifo"], ["--preemption-policy", "fcfs, priority"]),
        (["--max-num-seqs", "8", "--max-num-running-reqs", "9"], ["--max-num-seqs", "--max-num-running-reqs"]),
        (["--max-num-batched-tokens", "8", "--max-num-scheduled-tokens", "9"], ["--max-num-batched-tokens"]),
    ],
)
def test_bad_goodput_and_scheduling_flags_get_one_error_line(blis, args, words):
    assert_one_error(*invoke(blis, base(*args)), *words)


def test_a_bad_spec_target_names_its_key(tmp_path, blis):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: '1'\naggregate_rate: 20\nnum_requests: 5\ngoodput_slo_targets:\n  a: {ttft_ms: -3}\n"
        "clients:\n  - {id: a, rate_fraction: 1, arrival: {process: poisson},\n"
        "     input_distribution: {type: constant, params: {value: 64}},\n"
        "     output_distribution: {type: constant, params: {value: 16}}}\n"
    )
    assert_one_error(*invoke(blis, base("--workload-spec", str(spec))), "goodput_slo_targets.a.ttft_ms")


def test_vllm_names_are_aliases(blis):
    _, a, _ = blis(*base("--num-requests", "30", "--max-num-seqs", "4", "--max-num-batched-tokens", "512"))
    _, b, _ = blis(*base("--num-requests", "30", "--max-num-running-reqs", "4", "--max-num-scheduled-tokens", "512"))
    _, c, _ = blis(*base("--num-requests", "30"))
    assert a == b != c


# --- the goodput reward and the SLO admission scenario -----------------------------------------


def _play(env, agent, seed):
    obs, _ = env.reset(seed=seed)
    done, total = False, 0.0
    while not done:
        obs, reward, done, _, info = env.step(agent.predict(obs, deterministic=True)[0])
        total += reward
    return total, info


@pytest.mark.parametrize("policy", ["always-admit", "gaie-legacy"])
def test_the_goodput_return_counts_the_runs_good_requests(policy):
    """On slo-overload (TTFT and E2E targets per class) the episode's return is the number of
    good requests ``blis run`` counts with the same flags; one policy sheds, the other does not."""
    import gymnasium as gym

    import blis_gym.envs  # noqa: F401
    from blis_gym.baselines import cli_options_for, make_baseline

    env = gym.make("blis_gym/Admission-v0", scenario="slo-overload", num_requests=300)
    agent = make_baseline(policy, env)
    total, info = _play(env, agent, seed=5)
    plan = resolve(cli_options_for(agent, env.unwrapped.scenario.run).with_seed(5))
    result = simulate(plan)
    g = compute_goodput(result.aggregate, result.arrived_by_class, plan.slo_targets)
    assert total == sum(c.good for c in g.classes.values()) > 0
    assert info["metrics"]["rejected_requests"] == result.rejected
    assert (result.rejected > 0) == (policy == "gaie-legacy")


def test_a_goodput_reward_needs_targets():
    from blis_gym.envs import load_scenario

    with pytest.raises(ConfigError, match="reward goodput needs SLO targets"):
        load_scenario("overload", reward="goodput")
    s = load_scenario("overload", reward="goodput", slo_ttft="default=200ms")
    assert s.plan.slo_targets == {"default": SLOTarget(ttft_ms=200.0)}


def test_a_sweep_point_with_targets_reports_goodput():
    from blis_gym.sweep.point import run_point
    from blis_gym.sweep.spec import Point

    options = {"model": MODEL, "num_requests": 30, "rate": 20.0, "slo_e2e": "default=1h", "log": "error"}
    row = run_point(Point(0, {}, options))
    assert row["error"] == "" and row["metrics"]["slo_attainment"] == 1.0
    assert row["metrics"]["goodput_rps"] == pytest.approx(30 / row["metrics"]["vllm_estimated_duration_s"])
    assert "goodput_rps" not in run_point(Point(0, {}, {**options, "slo_e2e": ""}))["metrics"]


def test_evaluate_takes_slo_flags_and_reports_goodput(blis, tmp_path):
    code, out, err = blis(
        "evaluate",
        "--baselines",
        "round-robin",
        "--episodes",
        "2",
        "--set",
        "num_requests=60",
        "--slo-e2e",
        "default=1h",
        "--out",
        str(tmp_path),
    )
    assert code == 0, err
    assert "slo attainment" in out and "goodput rps" in out
    doc = json.loads((tmp_path / "results.json").read_text())
    (policy,) = doc["summary"]
    assert policy["slo_attainment"] == 1.0
