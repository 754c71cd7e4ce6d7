"""Fitness score, per-SLO metrics, SLO attainment and Jain's index, against hand-computed values."""

from __future__ import annotations

import logging
import math
import random

import pytest

from blis_gym.config.fitness import FITNESS_KEYS, parse_fitness_weights
from blis_gym.engine.metrics import InstanceMetrics, RequestRecord
from blis_gym.errors import ConfigError
from blis_gym.report.fitness import (
    Distribution,
    FitnessResult,
    RawMetrics,
    compute_fitness,
    distribution,
    fitness_lines,
    go_fixed,
    metric_value,
    percentile,
    raw_metrics,
)
from blis_gym.report.slo import (
    SLOMetrics,
    jain_fairness_index,
    per_slo_distributions,
    per_slo_lines,
    slo_attainment,
)
from blis_gym.report.summary import metrics_block, priority_inversions

# --- percentiles and distributions ------------------------------------------------------------


def test_percentile_interpolates_between_ranks():
    vals = [10.0, 20.0, 30.0, 40.0]
    assert percentile(vals, 50) == 25.0  # rank 1.5
    assert percentile(vals, 0) == 10.0
    assert percentile(vals, 100) == 40.0
    assert percentile(vals, 95) == pytest.approx(38.5, rel=1e-12)  # rank 2.85
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0
    assert percentile([float(i) for i in range(101)], 99) == 99.0  # exact rank


def test_distribution_summary_and_empty():
    d = distribution([400.0, 100.0, 300.0, 200.0])
    assert d == Distribution(
        mean=250.0,
        p50=250.0,
        p95=pytest.approx(385.0, rel=1e-12),
        p99=pytest.approx(397.0, rel=1e-12),
        min=100.0,
        max=400.0,
        count=4,
    )
    assert distribution([]) == Distribution(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)


def test_distribution_sums_sorted_values_left_to_right():
    big = float(2**53)
    # Ascending: 1 + 1 = 2, then 2 + 2^53 is exact. Input order would lose both ones.
    d = distribution([big, 1.0, 1.0])
    assert d.mean == (big + 2.0) / 3.0
    assert d.mean != ((big + 1.0) + 1.0) / 3.0


# --- raw metrics ------------------------------------------------------------------------------


def _metrics(sim_ended=2_000_000, completed=4, out_tokens=100) -> InstanceMetrics:
    m = InstanceMetrics()
    m.sim_ended = sim_ended
    m.completed = completed
    m.total_output_tokens = out_tokens
    m.ttfts = {"a": 300.0, "b": 100.0}
    m.e2es = {"a": 5000.0, "b": 1000.0}
    return m


def test_raw_metrics_throughput_and_latency():
    raw = raw_metrics(_metrics())
    assert raw.requests_per_sec == 2.0  # 4 requests in 2 s
    assert raw.tokens_per_sec == 50.0
    assert raw.ttft.mean == 200.0 and raw.ttft.count == 2
    assert raw.e2e.max == 5000.0 and raw.e2e.min == 1000.0


@pytest.mark.parametrize("sim_ended,completed", [(0, 4), (2_000_000, 0)])
def test_raw_metrics_no_rates_without_time_or_completions(sim_ended, completed):
    raw = raw_metrics(_metrics(sim_ended=sim_ended, completed=completed))
    assert raw.requests_per_sec == 0.0 and raw.tokens_per_sec == 0.0


def test_raw_metrics_agrees_with_metrics_block_of_a_real_run():
    from testkit.sim import config, simulator, workload

    result = simulator(config(num_instances=2), workload(rate=40, n=60)).run()
    raw = raw_metrics(result.aggregate)
    block = metrics_block("cluster", result.aggregate)
    assert raw.ttft.count == raw.e2e.count == result.aggregate.completed == 60
    assert raw.requests_per_sec == pytest.approx(block["responses_per_sec"], rel=1e-12)
    assert raw.tokens_per_sec == pytest.approx(block["tokens_per_sec"], rel=1e-12)
    assert raw.ttft.p99 / 1000 == pytest.approx(block["ttft_p99_ms"], rel=1e-9)
    assert raw.e2e.mean / 1000 == pytest.approx(block["e2e_mean_ms"], rel=1e-9)


# --- normalisation and score ------------------------------------------------------------------


RAW = RawMetrics(
    ttft=Distribution(mean=3000.0, p50=1000.0, p95=0.0, p99=4000.0, min=0.0, max=0.0, count=3),
    e2e=Distribution(mean=1000.0, p50=0.0, p95=0.0, p99=9000.0, min=0.0, max=0.0, count=3),
    requests_per_sec=300.0,
    tokens_per_sec=10000.0,
)


@pytest.mark.parametrize(
    "key,expected",
    [
        ("throughput", 0.75),  # 300 / (300 + 100)
        ("tokens_per_sec", 0.5),  # 10000 / (10000 + 10000)
        ("p99_ttft", 0.2),  # 1 / (1 + 4000/1000)
        ("p50_ttft", 0.5),
        ("mean_ttft", 0.25),
        ("p99_e2e", 0.1),
        ("p50_e2e", 1.0),  # zero latency is a perfect score
        ("mean_e2e", 0.5),
    ],
)
def test_each_key_is_normalised(key, expected):
    assert metric_value(RAW, key) == pytest.approx(expected, rel=1e-15)


def test_zero_throughput_scores_zero():
    assert metric_value(RawMetrics(), "throughput") == 0.0
    assert metric_value(RawMetrics(), "tokens_per_sec") == 0.0


def test_keys_in_reference_order():
    assert FITNESS_KEYS == (
        "throughput",
        "tokens_per_sec",
        "p99_ttft",
        "p50_ttft",
        "mean_ttft",
        "p99_e2e",
        "p50_e2e",
        "mean_e2e",
    )


def test_score_is_weighted_sum_and_prints():
    raw = RawMetrics(ttft=Distribution(p99=1000.0, count=1), requests_per_sec=100.0)
    result = compute_fitness(raw, parse_fitness_weights("throughput:0.5,p99_ttft:0.3"))
    assert result.components == {"p99_ttft": 0.5, "throughput": 0.5}
    assert result.score == pytest.approx(0.4, rel=1e-15)
    assert fitness_lines(result) == [
        "=== Fitness Evaluation ===",
        "Score: 0.400000",
        "  p99_ttft: 0.500000",
        "  throughput: 0.500000",
    ]


def test_score_accumulates_in_sorted_key_order():
    # All three values are 1.0 (zero latency). Sorted: mean_e2e (2^53), mean_ttft (1), p50_e2e (1):
    # 2^53 + 1 rounds back to 2^53 twice. Any order adding the ones first would give 2^53 + 2.
    big = float(2**53)
    result = compute_fitness(RawMetrics(), {"p50_e2e": 1.0, "mean_ttft": 1.0, "mean_e2e": big})
    assert result.score == big
    assert list(result.components) == ["mean_e2e", "mean_ttft", "p50_e2e"]


def test_compute_fitness_rejects_unknown_key():
    with pytest.raises(ConfigError, match="unknown fitness metric key 'p90_ttft'"):
        compute_fitness(RAW, {"throughput": 1.0, "p90_ttft": 1.0})


def test_empty_weights_score_zero():
    result = compute_fitness(RAW, {})
    assert result == FitnessResult(0.0, {})
    assert fitness_lines(result) == ["=== Fitness Evaluation ===", "Score: 0.000000"]


def test_go_fixed_matches_go_formatting():
    # Exact binary value, ties to even: Go prints the same strings.
    assert go_fixed(0.125, 2) == "0.12"
    assert go_fixed(0.375, 2) == "0.38"
    assert go_fixed(2.675, 2) == "2.67"  # stored just below 2.675
    assert go_fixed(1.0000005, 6) == "1.000001"  # stored just above the tie
    assert go_fixed(0.0, 6) == "0.000000"
    assert go_fixed(math.inf, 6) == "+Inf"
    assert go_fixed(math.nan, 2) == "NaN"


# --- weight parsing ---------------------------------------------------------------------------


def test_parse_accepts_spaces_exponents_and_go_number_forms():
    assert parse_fitness_weights("") == {}
    assert parse_fitness_weights(" throughput : 0.5 ,\tp99_ttft:1e-1 ") == {"throughput": 0.5, "p99_ttft": 0.1}
    assert parse_fitness_weights("throughput:1_0") == {"throughput": 10.0}
    assert parse_fitness_weights("throughput:0x1p-1") == {"throughput": 0.5}
    assert parse_fitness_weights("throughput:.5,mean_e2e:3.") == {"throughput": 0.5, "mean_e2e": 3.0}
    assert parse_fitness_weights("throughput:0") == {"throughput": 0.0}


def test_parse_duplicate_key_keeps_last():
    assert parse_fitness_weights("throughput:1,throughput:2") == {"throughput": 2.0}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("throughput", "entry 'throughput' is not key:weight"),
        ("throughput:1,", "entry '' is not key:weight"),
        (" ", "entry '' is not key:weight"),
        ("throughput:abc", "weight for 'throughput' is not a number: 'abc'"),
        ("throughput:", "weight for 'throughput' is not a number: ''"),
        ("throughput:1__0", "is not a number"),
        ("throughput:0x1", "is not a number"),  # Go needs a p-exponent on hex
        ("throughput:+nan", "is not a number"),
        ("throughput:-1", "weight for 'throughput' must be a finite non-negative number, got '-1'"),
        ("throughput:NaN", "must be a finite non-negative number, got 'NaN'"),
        ("throughput:inf", "must be a finite non-negative number, got 'inf'"),
        ("throughput:1e400", "must be a finite non-negative number, got '1e400'"),
        ("p90_ttft:1", "unknown fitness metric key 'p90_ttft' (valid keys: throughput, tokens_per_sec, p99_ttft,"),
    ],
)
def test_parse_errors_name_flag_and_entry(text, fragment):
    with pytest.raises(ConfigError) as exc:
        parse_fitness_weights(text)
    msg = str(exc.value)
    assert msg.startswith("--fitness-weights: ")
    assert fragment in msg
    assert "\n" not in msg


def test_parse_reports_bad_value_before_unknown_key():
    # Values are checked while parsing; keys only once all entries parsed.
    with pytest.raises(ConfigError, match="is not a number"):
        parse_fitness_weights("bogus:1,throughput:x")
    with pytest.raises(ConfigError, match="key 'a_bad'"):
        parse_fitness_weights("z_bad:1,a_bad:1", flag="--fitness-weights")


def test_parse_uses_given_flag_name():
    with pytest.raises(ConfigError, match="^--weights: "):
        parse_fitness_weights("nope", flag="--weights")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def warnings_seen():
    """Warnings logged on "blis_gym", caught on that logger itself.

    An earlier CLI test may have set propagation off and left a handler on a closed stream,
    so the logger's handlers are swapped out for the duration of the test.
    """
    logger = logging.getLogger("blis_gym")
    handler = _Collect()
    saved = logger.handlers[:], logger.level
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING)
    yield handler.records
    logger.handlers[:], _ = saved
    logger.setLevel(saved[1])


# --- per-SLO metrics --------------------------------------------------------------------------


def _slo_metrics() -> InstanceMetrics:
    m = InstanceMetrics()
    classes = {"r1": "interactive", "r2": "interactive", "r3": "", "r4": "batch", "r5": "batch"}
    for i, (rid, cls) in enumerate(classes.items()):
        m.requests[rid] = RequestRecord(rid, float(i), 10, 5, slo_class=cls)
    m.ttfts = {"r1": 100.0, "r2": 300.0, "r3": 50.0, "r4": 1000.0, "r5": 2000.0}
    m.e2es = {"r1": 1000.0, "r2": 3000.0, "r3": 500.0, "r4": 20000.0}  # r5 still running
    return m


def test_per_slo_distributions_by_class():
    per = per_slo_distributions(_slo_metrics())
    assert list(per) == ["batch", "default", "interactive"]
    assert per["batch"].ttft.mean == 1500.0 and per["batch"].ttft.p99 == 1990.0 and per["batch"].ttft.count == 2
    assert per["batch"].e2e.count == 1 and per["batch"].e2e.p99 == 20000.0
    assert per["default"] == SLOMetrics(distribution([50.0]), distribution([500.0]))
    assert per["interactive"].e2e.mean == 2000.0 and per["interactive"].e2e.p99 == 2980.0


def test_per_slo_lines():
    assert per_slo_lines(per_slo_distributions(_slo_metrics())) == [
        "=== Per-SLO Metrics ===",
        "  batch:",
        "    TTFT: mean=1500.00 p99=1990.00 (n=2)",
        "    E2E:  mean=20000.00 p99=20000.00 (n=1)",
        "  default:",
        "    TTFT: mean=50.00 p99=50.00 (n=1)",
        "    E2E:  mean=500.00 p99=500.00 (n=1)",
        "  interactive:",
        "    TTFT: mean=200.00 p99=298.00 (n=2)",
        "    E2E:  mean=2000.00 p99=2980.00 (n=2)",
    ]


def test_class_with_only_ttfts_gets_empty_e2e():
    m = _slo_metrics()
    del m.e2es["r4"]
    per = per_slo_distributions(m)
    assert per["batch"].e2e == Distribution()
    assert "    E2E:  mean=0.00 p99=0.00 (n=0)" in per_slo_lines(per)


def test_single_class_prints_nothing():
    m = InstanceMetrics()
    m.requests["a"] = RequestRecord("a", 0.0, 1, 1)
    m.ttfts = {"a": 10.0}
    m.e2es = {"a": 20.0}
    per = per_slo_distributions(m)
    assert list(per) == ["default"]
    assert per_slo_lines(per) == []
    assert per_slo_lines({}) == []


def test_per_slo_skips_unknown_requests_with_warning(warnings_seen):
    m = _slo_metrics()
    m.ttfts["ghost"] = 1.0
    m.e2es["ghost"] = 2.0
    per = per_slo_distributions(m)
    assert [r.levelno for r in warnings_seen] == [logging.WARNING, logging.WARNING]  # one for TTFT, one for E2E
    assert all(r.getMessage().startswith("per-SLO metrics: 1 requests with a ") for r in warnings_seen)
    assert per == per_slo_distributions(_slo_metrics())


# --- SLO attainment ---------------------------------------------------------------------------


def test_slo_attainment_against_targets():
    m = _slo_metrics()
    # r1 1000 <= 2000 met, r2 3000 missed, r3 (no class, no target) met, r4 20000 > 10000 missed.
    assert slo_attainment(m, {"interactive": 2000.0, "batch": 10000.0}) == 0.5
    assert slo_attainment(m, {"interactive": 3000.0}) == 1.0  # boundary counts as met
    assert slo_attainment(m, {}) == 1.0
    # Targets are keyed by the raw class: "default" does not apply to unlabelled requests.
    assert slo_attainment(m, {"default": 1.0, "": 499.0, "interactive": 1e9, "batch": 1e9}) == 0.75


def test_slo_attainment_counts_unknown_requests_as_missed(warnings_seen):
    m = _slo_metrics()
    m.e2es["ghost"] = 1.0
    assert slo_attainment(m, {"interactive": 2000.0, "batch": 10000.0}) == 2 / 5
    assert len(warnings_seen) == 1 and "counted as missed" in warnings_seen[0].getMessage()


def test_slo_attainment_empty_is_zero():
    assert slo_attainment(InstanceMetrics(), {"a": 1.0}) == 0.0


# --- Jain's fairness index --------------------------------------------------------------------


def test_jain_index():
    assert jain_fairness_index({"a": 5.0, "b": 5.0, "c": 5.0}) == 1.0
    assert jain_fairness_index({"a": 0.0, "b": 7.0, "c": 0.0, "d": 0.0}) == 0.25  # 1/n
    assert jain_fairness_index({"a": 1.0, "b": 3.0}) == 0.8  # 16 / (2 * 10)
    assert jain_fairness_index({}) == 0.0
    assert jain_fairness_index({"a": 0.0, "b": 0.0}) == 1.0


def test_priority_inversions_count_every_pair_of_the_definition():
    """Pairs within a class where the earlier arrival's E2E is over twice the later one's,
    counted against the pairwise definition on random data (ties in arrivals and E2Es
    included), and none under the constant policy."""
    rng = random.Random(3)
    m = InstanceMetrics()
    for i in range(300):
        rid = f"r{i}"
        m.requests[rid] = RequestRecord(
            rid, float(rng.randint(0, 40)), 10, 5, slo_class=rng.choice(["", "batch", "realtime"])
        )
        m.e2es[rid] = float(rng.choice([1, 2, 3, 4, 5, 8, 10]))
    expected = 0
    for cls in ("", "batch", "realtime"):
        reqs = sorted(
            ((r.arrived_at, m.e2es[r.id]) for r in m.requests.values() if r.slo_class == cls), key=lambda x: x[0]
        )
        expected += sum(1 for i in range(len(reqs)) for j in range(i + 1, len(reqs)) if reqs[i][1] > 2.0 * reqs[j][1])
    assert expected > 0
    assert priority_inversions([m], "slo-based") == expected
    assert priority_inversions([m], "constant") == 0
