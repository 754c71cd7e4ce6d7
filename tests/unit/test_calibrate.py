"""blis calibrate: BLIS's calibration maths (its test vectors, in our own tests), our pairing
rules and ITL, and the command on a real-mode trace built from the simulator's own output."""

from __future__ import annotations

import json
import logging
import math
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from blis_gym.calibrate.compare import (
    CalibrationConfig,
    CalibrationPairs,
    ConfigMatch,
    LatencyPair,
    SimResult,
    build_calibration_report,
    compute_calibration,
    download_delay_us,
    pearson_correlation,
    percentile_from_sorted,
    prepare_calibration_pairs,
    quality_rating,
    upload_delay_us,
)
from blis_gym.plan import RunOptions, resolve, simulate
from blis_gym.workload.tracev2 import (
    TraceHeader,
    TraceNetwork,
    TraceRecord,
    TraceServer,
    TraceV2,
    export_trace_v2,
    load_trace_v2,
)

MODEL = "meta-llama/llama-3.1-8b-instruct"


def rec(request_id: int, send: int = 0, first: int = 0, last: int = 0, **kw) -> TraceRecord:
    return TraceRecord(request_id, send_time_us=send, first_chunk_time_us=first, last_chunk_time_us=last, **kw)


# --- the reference's ComputeCalibration cases -----------------------------------------------------


def test_identical_vectors_have_no_error_and_perfect_correlation():
    m = compute_calibration([100, 200, 300, 400, 500], [100, 200, 300, 400, 500], "ttft")
    assert m.mape == 0.0
    assert m.pearson_r == 1.0
    assert m.quality == "excellent"
    assert m.bias_direction == "neutral"
    assert m.count == 5


def test_ten_percent_high_everywhere_is_a_mape_of_one_tenth_and_over_predicts():
    m = compute_calibration([100, 200, 300], [110, 220, 330], "e2e")
    assert m.mape == pytest.approx(0.10, abs=1e-3)
    assert m.bias_direction == "over-predict"


def test_empty_vectors_are_refused():
    with pytest.raises(ValueError, match="empty latency vectors for ttft"):
        compute_calibration([], [], "ttft")


def test_vectors_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="mismatched vector lengths for ttft: real=2 sim=1"):
        compute_calibration([1, 2], [1], "ttft")


def test_a_zero_real_value_is_left_out_of_mape():
    # Only 200 -> 220 and 300 -> 330 count: 10 % each.
    m = compute_calibration([0, 200, 300], [10, 220, 330], "ttft")
    assert m.mape == pytest.approx(0.10, abs=1e-3)


# --- the reference's PrepareCalibrationPairs cases ------------------------------------------------


def test_records_pair_with_results_by_request_id_whatever_the_order():
    records = [
        rec(0, send=10, first=500, last=1000),
        rec(1, arrival_time_us=100000, send=100010, first=100800, last=101500),
    ]
    sims = [SimResult(1, ttft=750, e2e=1400), SimResult(0, ttft=450, e2e=950)]
    pairs = prepare_calibration_pairs(records, sims, CalibrationConfig())
    assert pairs.matched_count == 2
    assert (pairs.ttft.real[0], pairs.ttft.sim[0]) == (490, 450)  # 500 - 10 against 450
    assert (pairs.ttft.real[1], pairs.ttft.sim[1]) == (790, 750)
    assert (pairs.e2e.real[1], pairs.e2e.sim[1]) == (1490, 1400)


def test_network_round_trip_is_added_to_the_simulated_side():
    pairs = prepare_calibration_pairs(
        [rec(0, send=100, first=6000, last=7000)],
        [SimResult(0, ttft=500, e2e=900)],
        CalibrationConfig(network_rtt_us=5000),
    )
    assert pairs.ttft.sim[0] == 5500
    assert pairs.ttft.real[0] == 5900
    assert pairs.e2e.sim[0] == 5900


def test_warm_up_requests_are_left_out():
    records = [rec(i, send=i * 1000, first=i * 1000 + 500, last=i * 1000 + 1000) for i in range(5)]
    sims = [SimResult(i, ttft=450, e2e=900) for i in range(5)]
    pairs = prepare_calibration_pairs(records, sims, CalibrationConfig(warm_up_requests=2))
    assert len(pairs.ttft.real) == 3
    assert pairs.excluded_warm_up == 2
    assert pairs.unmatched_sim == 2  # the warm-up requests' twins were simulated but not compared


def test_a_record_without_a_simulated_twin_is_unmatched():
    records = [rec(0, 0, 500, 1000), rec(1, 1000, 1500, 2000), rec(2, 2000, 2500, 3000)]
    sims = [SimResult(0, 450, 900), SimResult(1, 480, 950)]
    pairs = prepare_calibration_pairs(records, sims, CalibrationConfig())
    assert pairs.matched_count == 2
    assert pairs.unmatched_real == 1
    assert pairs.unmatched_sim == 0


def test_different_token_counts_are_counted_as_mismatches():
    pairs = prepare_calibration_pairs(
        [rec(0, 0, 500, 1000, input_tokens=512, output_tokens=128)],
        [SimResult(0, 450, 900, input_tokens=500, output_tokens=128)],
        CalibrationConfig(),
    )
    assert pairs.token_mismatch_count == 1


def test_the_report_carries_counts_metrics_config_match_and_limitations():
    pairs = CalibrationPairs(
        ttft=LatencyPair([100, 200, 300], [110, 210, 310]),
        e2e=LatencyPair([500, 600, 700], [520, 630, 710]),
        token_mismatch_count=1,
        matched_count=3,
        excluded_warm_up=2,
    )
    report = build_calibration_report(
        pairs, ConfigMatch(matched=("max_num_seqs=256",), defaulted=("block_size (not in trace header)",))
    )
    assert report.known_limitations
    assert report.config_match.matched == ("max_num_seqs=256",)
    assert report.config_match.defaulted == ("block_size (not in trace header)",)
    assert report.trace_info.token_mismatches == 1
    assert report.trace_info.matched_pairs == 3
    assert report.trace_info.num_requests == 5
    assert set(report.metrics) == {"ttft", "e2e"}  # no ITL pairs, no ITL entry


# --- the formulas, figure by figure --------------------------------------------------------------


def test_percentiles_interpolate_linearly_between_ranks():
    values = [100.0, 200.0, 300.0, 400.0, 500.0]
    assert percentile_from_sorted(values, 50) == 300.0  # rank 2 exactly
    assert percentile_from_sorted(values, 90) == pytest.approx(460.0, rel=1e-15)  # rank 3.6
    assert percentile_from_sorted(values, 95) == pytest.approx(480.0, rel=1e-15)  # rank 3.8
    assert percentile_from_sorted(values, 99) == pytest.approx(496.0, rel=1e-15)  # rank 3.96
    # The operation order of the reference: rank = p / 100 * (n - 1); lower + frac * (upper - lower).
    rank = 90 / 100.0 * 4.0
    assert percentile_from_sorted(values, 90) == 400.0 + (rank - 3.0) * (500.0 - 400.0)
    assert percentile_from_sorted([7.5], 99) == 7.5
    assert percentile_from_sorted([], 50) == 0.0


def test_percentiles_come_from_sorted_copies_and_leave_the_inputs_alone():
    real = [500.0, 100.0, 300.0, 200.0, 400.0]
    sim = [5.0, 1.0, 3.0, 2.0, 4.0]
    m = compute_calibration(real, sim, "ttft")
    assert (m.real_p50, m.sim_p50) == (300.0, 3.0)
    assert real == [500.0, 100.0, 300.0, 200.0, 400.0]
    assert m.pearson_r == pytest.approx(1.0, rel=1e-12)  # pairs stay paired


def test_pearson_uses_the_sum_formula():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]
    # n=4, Σx=10, Σy=10, Σxy=28, Σx²=30, Σy²=30: (4·28 - 100) / sqrt((120 - 100)(120 - 100)) = 12 / 20
    assert pearson_correlation(x, y) == 0.6
    assert pearson_correlation([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == -1.0
    assert pearson_correlation([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]) == 0.0  # a constant vector: 0, not NaN


def test_pearson_needs_three_pairs():
    m = compute_calibration([100, 200], [100, 200], "ttft")
    assert m.pearson_r == 0.0
    assert m.mape == 0.0
    assert m.quality == "poor"  # r = 0 fails every threshold


def test_bias_sums_signed_errors_over_the_non_zero_reals():
    assert compute_calibration([100, 200, 300], [90, 180, 310], "e2e").bias_direction == "under-predict"
    assert compute_calibration([100, 200, 300], [110, 190, 300], "e2e").bias_direction == "neutral"
    # The zero real is skipped for the bias too, so its huge error counts for nothing.
    assert compute_calibration([0, 100, 200], [1000, 90, 190], "e2e").bias_direction == "under-predict"
    only_zero = compute_calibration([0, 0, 0], [1, 2, 3], "e2e")
    assert (only_zero.mape, only_zero.bias_direction) == (0.0, "")


@pytest.mark.parametrize(
    "mape, r, want",
    [
        (0.099, 0.951, "excellent"),
        (0.10, 0.99, "good"),
        (0.05, 0.95, "good"),
        (0.199, 0.851, "good"),
        (0.20, 0.99, "fair"),
        (0.05, 0.85, "fair"),
        (0.349, 0.701, "fair"),
        (0.35, 0.99, "poor"),
        (0.01, 0.70, "poor"),
        (0.0, float("nan"), "poor"),
    ],
)
def test_quality_thresholds_are_strict(mape, r, want):
    assert quality_rating(mape, r) == want


def test_network_delays_count_four_bytes_a_token():
    assert upload_delay_us(0, 1000) == 0.0
    assert upload_delay_us(-5, 1000) == 0.0
    assert upload_delay_us(100, 1000) == 320.0  # 32 000 bits at 100 Mbit/s = 320 µs
    assert download_delay_us(8, 250) == 1000.0  # 8 000 bits at 8 Mbit/s = 1 ms
    pairs = prepare_calibration_pairs(
        [rec(0, 0, 5000, 9000, input_tokens=1000, output_tokens=250)],
        [SimResult(0, 1000, 4000, input_tokens=1000, output_tokens=250)],
        CalibrationConfig(network_rtt_us=2000, bandwidth_mbps=100),
    )
    assert pairs.ttft.sim == [1000 + 2000 + 320.0]
    assert pairs.e2e.sim == [4000 + 2000 + 320.0 + 80.0]  # 8 000 bits down at 100 Mbit/s


# --- our pairing rules -----------------------------------------------------------------------------


def test_a_negative_real_latency_is_unmatched_and_not_also_matched():
    records = [rec(0, send=1000, first=900, last=2000), rec(1, send=100, first=150, last=50), rec(2, 0, 100, 200)]
    sims = [SimResult(i, 80, 150) for i in range(3)]
    pairs = prepare_calibration_pairs(records, sims)
    assert (pairs.matched_count, pairs.unmatched_real, pairs.negative_latencies) == (1, 2, 2)
    assert pairs.unmatched_sim == 0  # their twins did run
    assert pairs.ttft.real == [100.0]
    assert build_calibration_report(pairs).trace_info.num_requests == 3


def test_only_ok_records_are_compared():
    records = [
        rec(0, 0, 100, 200),
        rec(1, 0, 100, 200, status="error", error_message="HTTP 500"),
        rec(2, 0, 0, 0, status="timeout"),
        rec(3, 0, 120, 220),
    ]
    sims = [SimResult(i, 100, 200) for i in range(4)]
    pairs = prepare_calibration_pairs(records, sims, CalibrationConfig(warm_up_requests=1))
    assert (pairs.excluded_warm_up, pairs.excluded_non_ok, pairs.matched_count) == (1, 2, 1)
    assert pairs.ttft.real == [120.0]
    info = build_calibration_report(pairs).trace_info
    assert (info.num_requests, info.non_ok_excluded) == (4, 2)


def test_itl_pairs_per_chunk_against_per_token():
    records = [
        rec(0, 0, 1000, 5000, streaming=True, num_chunks=5, output_tokens=5),  # (5000-1000)/4 = 1000
        rec(1, 0, 1000, 5000, streaming=False, num_chunks=5, output_tokens=5),  # not streaming: no ITL
        rec(2, 0, 1000, 1000, streaming=True, num_chunks=1, output_tokens=1),  # one chunk: no ITL
        rec(3, 0, 1000, 3000, streaming=True, num_chunks=3, output_tokens=1),  # sim has 1 token: no ITL
        rec(4, 0, 1000, 800, streaming=True, num_chunks=3, output_tokens=3),  # last before first: no ITL
    ]
    sims = [
        SimResult(0, 900, 4900, output_tokens=5),
        SimResult(1, 900, 4900, output_tokens=5),
        SimResult(2, 900, 900, output_tokens=1),
        SimResult(3, 900, 900, output_tokens=1),
        SimResult(4, 900, 1900, output_tokens=3),
    ]
    pairs = prepare_calibration_pairs(records, sims, CalibrationConfig(network_rtt_us=700, bandwidth_mbps=1))
    assert pairs.itl.real == [1000.0]
    assert pairs.itl.sim == [1000.0]  # (4900 - 900) / 4: the network adds nothing per token
    assert len(pairs.ttft.real) == 5
    report = build_calibration_report(pairs)
    assert report.metrics["itl"].count == 1
    assert list(report.metrics) == ["ttft", "itl", "e2e"]


# --- the command ---------------------------------------------------------------------------------


def _records() -> list[TraceRecord]:
    """Sixteen requests 40 ms apart: mixed lengths, two prefix groups, one non-streaming."""
    out = []
    for i in range(16):
        out.append(
            TraceRecord(
                i,
                client_id=f"c{i % 2}",
                prefix_group=("sys-a", "", "sys-b")[i % 3],
                streaming=i != 5,
                input_tokens=64 + 37 * i,
                output_tokens=(3, 40, 120, 17)[i % 4],
                arrival_time_us=40_000 * i,
            )
        )
    return out


@contextmanager
def _quiet_log():
    """The default-resolution warnings of a direct simulation, kept off an earlier test's
    (closed) captured stderr."""
    logger = logging.getLogger("blis_gym")
    saved = logger.handlers[:], logger.propagate
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = saved


def _real_trace(folder: Path, header: TraceHeader, seed: int = 42, rtt_us: int = 0, skew: float = 1.0) -> Path:
    """A real-mode trace whose timings are the simulator's own (plus ``rtt_us``, times ``skew``)."""
    records = _records()
    export_trace_v2(TraceV2(header, tuple(records)), folder)
    opts = RunOptions(model=MODEL, seed=seed, workload="traces", workload_traces_filepath=str(folder))
    with _quiet_log():
        agg = simulate(resolve(opts)).aggregate
    timed = []
    for r in records:
        rid = f"request_{r.request_id}"
        ttft, e2e = int(agg.ttfts[rid]), int(agg.e2es[rid])
        first = r.arrival_time_us + int((ttft + rtt_us) * skew)
        last = r.arrival_time_us + int((e2e + rtt_us) * skew)
        timed.append(
            replace(
                r,
                send_time_us=r.arrival_time_us,
                first_chunk_time_us=first,
                last_chunk_time_us=last,
                num_chunks=r.output_tokens if r.streaming else 1,
            )
        )
    export_trace_v2(TraceV2(header, tuple(timed)), folder)
    return folder


REAL = TraceHeader(
    mode="real",
    warm_up_requests=2,
    created_at="2026-01-01T00:00:00Z",
    server=TraceServer(type="vllm", model=MODEL, tensor_parallel=2, max_num_seqs=256),
    network=TraceNetwork(measured_rtt_ms=1.5),
)


def test_the_simulators_own_timings_calibrate_perfectly(blis, tmp_path):
    trace = _real_trace(tmp_path / "obs", REAL, rtt_us=1500)
    out = tmp_path / "cal.json"
    code, stdout, stderr = blis("calibrate", str(trace), "--out", str(out))
    assert code == 0, stderr
    report = json.loads(out.read_text())
    info = report["trace_info"]
    assert (info["num_requests"], info["warm_up_excluded"], info["matched_pairs"]) == (16, 2, 14)
    assert (info["token_mismatches"], info["unmatched_real"], info["unmatched_sim"]) == (0, 0, 2)
    assert report["normalization"] == {"warm_up_requests": 2, "network_rtt_us": 1500, "bandwidth_mbps": 0.0}
    for name in ("ttft", "itl", "e2e"):
        m = report["metrics"][name]
        assert m["mape"] == pytest.approx(0.0, abs=1e-12), name
        assert m["pearson_r"] == pytest.approx(1.0, abs=1e-9), name
        assert m["quality"] == "excellent"
        assert m["real_p90"] == pytest.approx(m["sim_p90"], rel=1e-12)
    # ITL: streaming requests with at least 2 tokens, past warm-up (request 5 does not stream).
    assert report["metrics"]["itl"]["count"] == len([r for r in _records()[2:] if r.streaming and r.output_tokens >= 2])
    assert report["config_match"]["matched"] == [
        f"model={MODEL} (from trace header)",
        "tensor_parallel=2 (from trace header)",
        "max_num_seqs=256 (from trace header)",
    ]
    assert any(d.startswith("block_size (not in trace header)") for d in report["config_match"]["defaulted"])
    assert len(report["known_limitations"]) == 4
    assert "=== Calibration ===" in stdout
    rows = {
        words[0]: words for words in map(str.split, stdout.splitlines()) if words[:1] in (["ttft"], ["itl"], ["e2e"])
    }
    # A non-streamed answer's first chunk is its end: TTFT pairs come from streamed requests only.
    streamed = len([r for r in _records()[2:] if r.streaming])
    assert 0 < streamed < 14 and info["ttft_non_streaming_excluded"] == 14 - streamed
    assert report["metrics"]["ttft"]["count"] == streamed and report["metrics"]["e2e"]["count"] == 14
    assert rows["ttft"][1] == str(streamed) and rows["ttft"][-1] == "excellent"
    assert f"wrote {out}" in stderr


def test_a_flag_that_differs_from_the_header_is_listed_as_overridden(blis, tmp_path):
    trace = _real_trace(tmp_path / "obs", replace(REAL, network=None), skew=1.25)
    out = tmp_path / "cal.json"
    code, _, stderr = blis(
        "calibrate", str(trace), "--out", str(out), "--warm-up", "0", "--", "--model", MODEL, "--tp", "4"
    )
    assert code == 0, stderr
    report = json.loads(out.read_text())
    assert report["trace_info"]["warm_up_excluded"] == 0
    assert report["config_match"]["overridden"] == ["--tp 4 (trace header: tensor_parallel=2)"]
    assert f"model={MODEL}" in report["config_match"]["matched"]


def test_skewed_timings_give_the_expected_mape(blis, tmp_path):
    trace = _real_trace(tmp_path / "obs", replace(REAL, network=None), skew=1.5)
    out = tmp_path / "cal.json"
    code, _, stderr = blis("calibrate", str(trace), "--out", str(out))
    assert code == 0, stderr
    e2e = json.loads(out.read_text())["metrics"]["e2e"]
    # real = 1.5 x sim (truncated to µs): |real - sim| / real = 1/3
    assert e2e["mape"] == pytest.approx(1 / 3, abs=1e-4)
    assert e2e["bias_direction"] == "under-predict"
    assert e2e["pearson_r"] == pytest.approx(1.0, abs=1e-6)
    assert e2e["quality"] == "fair"


def test_rtt_and_bandwidth_flags_override_the_header(blis, tmp_path):
    trace = _real_trace(tmp_path / "obs", REAL)
    out = tmp_path / "cal.json"
    code, _, stderr = blis(
        "calibrate",
        str(trace / "trace_data.csv"),
        "--out",
        str(out),
        "--network-rtt-ms",
        "0",
        "--bandwidth-mbps",
        "1000",
    )
    assert code == 0, stderr
    report = json.loads(out.read_text())
    assert report["normalization"]["network_rtt_us"] == 0
    assert report["metrics"]["ttft"]["bias_direction"] == "over-predict"  # upload delay, not in the real times
    assert report["metrics"]["itl"]["mape"] == pytest.approx(0.0, abs=1e-12)  # nothing per token


def test_plot_draws_a_chart_beside_the_report(blis, tmp_path):
    pytest.importorskip("matplotlib")
    trace = _real_trace(tmp_path / "obs", REAL, rtt_us=1500)
    out = tmp_path / "reports" / "cal.json"
    out.parent.mkdir()
    code, _, stderr = blis("calibrate", str(trace), "--out", str(out), "--plot")
    assert code == 0, stderr
    chart = out.with_suffix(".png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {chart}" in stderr


def test_plot_without_matplotlib_says_how_to_install_it(blis, tmp_path, monkeypatch):
    trace = _real_trace(tmp_path / "obs", REAL)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, stdout, stderr = blis("calibrate", str(trace), "--out", str(tmp_path / "c.json"), "--plot")
    assert code == 2
    assert stderr.strip() == "error: --plot needs matplotlib: pip install 'blis-gym[plot]'"
    assert not (tmp_path / "c.json").exists()


def _one_error(stderr: str) -> str:
    """The one error line, the last one (default-resolution warnings may come before it)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    assert all(line.startswith("level=") for line in lines[:-1]), stderr
    return lines[-1]


def test_a_generated_trace_has_nothing_to_compare(blis, tmp_path):
    folder = tmp_path / "gen"
    export_trace_v2(TraceV2(TraceHeader(mode="generated"), tuple(_records())), folder)
    code, _, stderr = blis("calibrate", str(folder), "--out", str(tmp_path / "c.json"))
    assert code == 2
    assert "has no observed timings (mode: generated); calibrate needs a real-mode trace" in _one_error(stderr)


def test_no_comparable_request_is_one_error(blis, tmp_path):
    trace = _real_trace(tmp_path / "obs", REAL)
    code, _, stderr = blis("calibrate", str(trace), "--out", str(tmp_path / "c.json"), "--warm-up", "100")
    assert code == 2
    assert "no request to compare: each of the 16 is warm-up (request_id below 100) or not ok" in _one_error(stderr)
    assert not (tmp_path / "c.json").exists()


def test_no_simulated_twin_is_one_error(blis, tmp_path):
    """Every real latency negative: nothing left to compare after the simulation."""
    trace = _real_trace(tmp_path / "obs", REAL)
    skewed = [replace(r, send_time_us=r.last_chunk_time_us + 1) for r in load_trace_v2(trace).records]
    export_trace_v2(TraceV2(REAL, tuple(skewed)), trace)
    code, _, stderr = blis("calibrate", str(trace), "--out", str(tmp_path / "c.json"))
    assert code == 2
    assert (
        "no request could be compared (16 in the trace: 2 warm-up, 0 not ok, 14 without a completed "
        "simulated twin or with negative latencies)"
    ) in _one_error(stderr)
    assert not (tmp_path / "c.json").exists()


def test_a_malformed_row_names_the_file_and_row(blis, tmp_path):
    trace = _real_trace(tmp_path / "obs", REAL)
    data = trace / "trace_data.csv"
    lines = data.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(",ok,", ",ok,").replace("true", "maybe", 1)
    data.write_text("".join(lines))
    code, _, stderr = blis("calibrate", str(trace), "--out", str(tmp_path / "c.json"))
    assert code == 2
    line = _one_error(stderr)
    assert str(data) in line and "row 3" in line and "streaming" in line


@pytest.mark.parametrize(
    "args, words",
    [
        (["--warm-up", "-1"], "--warm-up must be >= 0"),
        (["--network-rtt-ms", "-2"], "--network-rtt-ms must be a finite value >= 0"),
        (["--bandwidth-mbps", "nan"], "--bandwidth-mbps must be a finite value >= 0"),
        (["--", "--workload", "chatbot"], "replays the trace as the workload; drop --workload"),
        (["--", "--rate", "3", "--num-requests", "5"], "drop --rate, --num-requests"),
        (["--", "--results-path", "r.json"], "writes only its report (--out); drop --results-path"),
        (["--", "--no-such-flag"], "blis calibrate (blis run flags after --): No such option: --no-such-flag"),
        (["--", "--model", "no/such-model"], "no/such-model"),
    ],
)
def test_bad_options_are_one_error_line(blis, tmp_path, args, words):
    trace = _real_trace(tmp_path / "obs", REAL)
    code, _, stderr = blis("calibrate", str(trace), "--out", str(tmp_path / "c.json"), *args)
    assert code == 2
    assert words in _one_error(stderr)


def test_a_missing_trace_is_one_error(blis, tmp_path):
    code, _, stderr = blis("calibrate", str(tmp_path / "nowhere"))
    assert code == 2
    assert "trace header not found" in _one_error(stderr)


def test_a_header_without_a_model_needs_the_flag(blis, tmp_path):
    trace = _real_trace(tmp_path / "obs", replace(REAL, server=None))
    code, _, stderr = blis("calibrate", str(trace), "--out", str(tmp_path / "c.json"))
    assert code == 2
    assert "--model is required" in _one_error(stderr)
    code, _, stderr = blis("calibrate", str(trace), "--out", str(tmp_path / "c.json"), "--", "--model", MODEL)
    assert code == 0, stderr
    defaulted = json.loads((tmp_path / "c.json").read_text())["config_match"]["defaulted"]
    assert defaulted[0] == "tensor_parallel (not in trace header): --tp from the defaults file"
    assert not any(d.startswith("model") for d in defaulted)
    assert math.isfinite(json.loads((tmp_path / "c.json").read_text())["metrics"]["ttft"]["pearson_r"])


def test_slo_flags_add_attainment_real_against_simulated(blis, tmp_path):
    """Timings twice the simulator's: an E2E limit above every simulated E2E but below the real
    ones gives simulated attainment 1 and real 0; a limit above both gives 1 and 1."""
    trace = _real_trace(tmp_path / "obs", REAL, rtt_us=1500, skew=2.0)
    out = tmp_path / "cal.json"
    code, _, err = blis("calibrate", str(trace), "--out", str(out), "--slo-e2e", "default=1h")
    assert code == 0, err
    e2e = json.loads(out.read_text())["slo_attainment"]["default"]["e2e"]
    assert (e2e["real"], e2e["sim"], e2e["count"]) == (1.0, 1.0, 14)
    real_min = min(json.loads(out.read_text())["metrics"]["e2e"]["real_p50"], 1e18)
    code, stdout, err = blis(
        "calibrate", str(trace), "--out", str(out), "--slo-e2e", f"default={real_min / 1e3 / 1.5!r}ms"
    )
    assert code == 0, err
    e2e = json.loads(out.read_text())["slo_attainment"]["default"]["e2e"]
    assert e2e["sim"] > e2e["real"]
    assert "SLO attainment default: e2e real" in stdout
    code, _, err = blis("calibrate", str(trace), "--out", str(out), "--slo-ttft", "100ms")
    assert code == 2 and "--slo-ttft" in err
