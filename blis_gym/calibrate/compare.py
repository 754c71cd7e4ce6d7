"""Calibration: how closely the simulator reproduces latencies observed on a real server.

A real-mode trace (``blis observe``'s v2 trace: a header and one CSV row per request with its
send, first-chunk and last-chunk times) is replayed in the simulator; each real request is then
paired with the simulated request of the same id, and the two latency vectors are compared.

The maths follows BLIS's ``sim/workload/calibrate.go`` (commit ``96a0542f``) operation for
operation, so the figures equal the reference's on the same vectors:

- :func:`prepare_calibration_pairs` pairs records by request id, leaves out warm-up requests
  (``request_id < warm_up_requests``), counts token-count mismatches, and turns server-side
  simulated latencies into client-side ones: + network round trip + upload delay (TTFT),
  + download delay as well (E2E), the delays from the bandwidth at 4 bytes a token.
- :func:`compute_calibration` gives p50/p90/p95/p99 of each vector (linear interpolation on a
  sorted copy), the mean absolute percentage error (a fraction: 0.1 = 10 %; requests whose real
  value is 0 are skipped), the bias direction, Pearson's r (N >= 3, the sum formula) and a
  quality rating.
- :func:`build_calibration_report` assembles trace info, the per-metric comparisons, which
  simulator settings came from the trace header, and the model's known limitations.

Ours, beyond the reference:

- *ITL.* Real ITL of a request = (last chunk - first chunk) / (chunks - 1), for streaming
  requests with at least 2 chunks; simulated ITL = (E2E - TTFT) / (output tokens - 1),
  server-side, for requests with at least 2 output tokens (the network adds a fixed delay per
  request, nothing per token). A chunk is taken to carry one token, as a vLLM stream does.
  With the chunk times of ``blis observe --record-itl`` (BLIS's ITL file), real ITL is
  instead the mean of a request's chunk-to-chunk gaps, a negative gap (clock skew) left out,
  as BLIS's ``PrepareCalibrationPairsWithITL`` takes it; a request whose every gap is negative
  gives no ITL pair (``itl_dropped``), and one the file lacks none either (``itl_missing``).
- *Statuses.* Only records with ``status == "ok"`` are compared; errors and timeouts are
  counted as excluded (``non_ok_excluded``).
- *TTFT of non-streamed answers.* A non-streamed answer arrives whole: its first chunk is its
  last, so the reference compares its E2E with a simulated TTFT. ``blis calibrate`` sets
  ``ttft_streaming_only``, which leaves such requests out of TTFT (E2E keeps them).
- *Counting.* A record with a negative real latency (clock skew) counts as unmatched, and not
  also as matched as in the reference (where ``num_requests`` then counts it twice); token
  mismatches are counted over the pairs actually compared.

All latencies are in microseconds, as in the trace; the CLI shows milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ..report.fitness import percentile
from ..workload.tracev2 import TraceRecord

#: Bytes a token takes on the wire (an int32 token id), as BLIS's network model says.
BYTES_PER_TOKEN = 4
METRIC_NAMES = ("ttft", "itl", "e2e")

KNOWN_LIMITATIONS: tuple[str, ...] = (
    # The reference's three, word for word.
    "BLIS models discrete batch steps. Real servers use iteration-level continuous batching. "
    "This may cause systematic TTFT prediction error under high load.",
    "Sim constructs synthetic prefix token IDs. Prefix cache hit rates may differ from real server, "
    "especially after evictions.",
    "If the real server uses speculative decoding, actual token generation patterns differ from "
    "sim's sequential model.",
    # Ours.
    "Real ITL is measured per streamed chunk; it equals the per-token ITL only when each chunk carries one token.",
)


@dataclass(frozen=True)
class CalibrationConfig:
    """How real and simulated latencies are normalized before comparison."""

    warm_up_requests: int = 0  # records with request_id below this are left out
    network_rtt_us: int = 0  # round trip added to every simulated latency (µs)
    bandwidth_mbps: float = 0.0  # link bandwidth for upload/download delays (Mbit/s; <= 0: none)
    # Ours: a non-streamed answer arrives whole, so its "first chunk" is its end, not its first
    # token; with this on, non-streaming requests give no TTFT pair (the reference pairs them).
    ttft_streaming_only: bool = False


@dataclass(frozen=True)
class SimResult:
    """One simulated request: server-side latencies (µs, from arrival) and token counts."""

    request_id: int
    ttft: float  # first token time - arrival time (µs)
    e2e: float  # completion time - arrival time (µs)
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class LatencyPair:
    """Matched real and simulated latencies (µs), index i of both being one request."""

    real: list[float] = field(default_factory=list)
    sim: list[float] = field(default_factory=list)


@dataclass
class CalibrationPairs:
    """The paired vectors and what pairing left out."""

    ttft: LatencyPair = field(default_factory=LatencyPair)
    e2e: LatencyPair = field(default_factory=LatencyPair)
    itl: LatencyPair = field(default_factory=LatencyPair)  # ours
    token_mismatch_count: int = 0
    excluded_warm_up: int = 0
    excluded_non_ok: int = 0  # ours: records whose status is error or timeout
    matched_count: int = 0
    unmatched_real: int = 0  # no simulated request of that id, or a negative real latency
    unmatched_sim: int = 0
    negative_latencies: int = 0  # ours: the part of unmatched_real that was clock skew
    ttft_non_streaming: int = 0  # ours: pairs with no TTFT pair (ttft_streaming_only)
    # With an ITL file (chunk times): ITL comes from it; requests whose every gap was negative,
    # and streamed requests the file has fewer than 2 chunk times of, give no ITL pair.
    itl_from_file: bool = False
    itl_dropped: int = 0
    itl_missing: int = 0


@dataclass(frozen=True)
class MetricComparison:
    """Real against simulated values of one metric: percentiles in the vectors' unit (µs),
    MAPE as a fraction, Pearson's r (0 when N < 3 or a vector is constant)."""

    count: int
    real_p50: float
    sim_p50: float
    real_p90: float
    sim_p90: float
    real_p95: float
    sim_p95: float
    real_p99: float
    sim_p99: float
    mape: float
    pearson_r: float
    bias_direction: str  # over-predict, under-predict, neutral; "" when every real value is 0
    quality: str  # excellent, good, fair, poor


@dataclass(frozen=True)
class ConfigMatch:
    """Which simulator settings came from the trace header (matched), which fell back to
    defaults (defaulted), and (ours) which flags overrode a different header value."""

    matched: tuple[str, ...] = ()
    defaulted: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()


@dataclass(frozen=True)
class TraceInfo:
    """Request counts of the comparison."""

    num_requests: int
    warm_up_excluded: int
    matched_pairs: int
    token_mismatches: int
    unmatched_real: int = 0  # ours, from here on
    unmatched_sim: int = 0
    non_ok_excluded: int = 0
    negative_latencies: int = 0
    ttft_non_streaming_excluded: int = 0
    duration: str = ""  # left empty, as the reference leaves it


@dataclass(frozen=True)
class CalibrationReport:
    trace_info: TraceInfo
    metrics: dict[str, MetricComparison]  # ttft, itl, e2e: those with at least one pair
    config_match: ConfigMatch
    known_limitations: tuple[str, ...] = KNOWN_LIMITATIONS


# --- network delays (BLIS's sim/workload/network.go) ---------------------------------------------


def upload_delay_us(bandwidth_mbps: float, token_count: int) -> float:
    """Time (µs) to send ``token_count`` input tokens at ``bandwidth_mbps``; 0 when the
    bandwidth is not positive."""
    if bandwidth_mbps <= 0:
        return 0.0
    bits = float(token_count * BYTES_PER_TOKEN) * 8
    return bits / (bandwidth_mbps * 1e6) * 1e6  # seconds -> µs


def download_delay_us(bandwidth_mbps: float, token_count: int) -> float:
    """Time (µs) to receive ``token_count`` output tokens at ``bandwidth_mbps``; 0 when the
    bandwidth is not positive."""
    if bandwidth_mbps <= 0:
        return 0.0
    bits = float(token_count * BYTES_PER_TOKEN) * 8
    return bits / (bandwidth_mbps * 1e6) * 1e6


# --- pairing -------------------------------------------------------------------------------------


def itl_from_chunk_times(times: Sequence[int]) -> Optional[float]:
    """A request's real ITL from its chunk times (µs): the mean of the non-negative gaps
    between consecutive chunks; None with fewer than 2 chunks or no such gap."""
    total = 0
    count = 0
    for a, b in zip(times, times[1:]):
        if b >= a:
            total += b - a
            count += 1
    return total / count if count else None


def prepare_calibration_pairs(
    real_records: Sequence[TraceRecord],
    sim_results: Sequence[SimResult],
    config: Optional[CalibrationConfig] = None,
    chunk_times: Optional[Mapping[int, Sequence[int]]] = None,
) -> CalibrationPairs:
    """Pair real records with simulated results by request id, in the records' order.

    Real TTFT = first chunk - send, real E2E = last chunk - send (µs, client-side). Simulated
    TTFT = server TTFT + RTT + upload delay; simulated E2E = server E2E + RTT + upload delay +
    download delay. Warm-up records are skipped first, then (ours) records whose status is not
    ``ok``; a record with no simulated twin, or with a negative real TTFT or E2E, is unmatched.
    ITL pairs (ours) are added where both sides have one (see the module docstring); with
    ``chunk_times`` (request id -> chunk times, an ITL file's), the real side comes from them.
    """
    if config is None:
        config = CalibrationConfig()
    sim_by_id = {sr.request_id: sr for sr in sim_results}  # a later duplicate wins, as in Go's map
    pairs = CalibrationPairs()
    pairs.itl_from_file = chunk_times is not None
    matched_ids: set[int] = set()
    network = float(config.network_rtt_us)
    for rec in real_records:
        if rec.request_id < config.warm_up_requests:
            pairs.excluded_warm_up += 1
            continue
        if rec.status != "ok":
            pairs.excluded_non_ok += 1
            continue
        sr = sim_by_id.get(rec.request_id)
        if sr is None:
            pairs.unmatched_real += 1
            continue
        # The simulated twin did run, whatever becomes of the real record below.
        matched_ids.add(rec.request_id)
        real_ttft = float(rec.first_chunk_time_us - rec.send_time_us)
        real_e2e = float(rec.last_chunk_time_us - rec.send_time_us)
        if real_ttft < 0 or real_e2e < 0:  # clock skew or corrupt data: keep it out of the vectors
            pairs.unmatched_real += 1
            pairs.negative_latencies += 1
            continue
        pairs.matched_count += 1
        if rec.input_tokens != sr.input_tokens or rec.output_tokens != sr.output_tokens:
            pairs.token_mismatch_count += 1
        upload = upload_delay_us(config.bandwidth_mbps, sr.input_tokens)
        download = download_delay_us(config.bandwidth_mbps, sr.output_tokens)
        if config.ttft_streaming_only and not rec.streaming:
            pairs.ttft_non_streaming += 1
        else:
            pairs.ttft.real.append(real_ttft)
            pairs.ttft.sim.append(sr.ttft + network + upload)
        pairs.e2e.real.append(real_e2e)
        pairs.e2e.sim.append(sr.e2e + network + upload + download)
        if chunk_times is not None:
            times = chunk_times.get(rec.request_id, ())
            if len(times) < 2:
                pairs.itl_missing += rec.streaming and rec.num_chunks >= 2
                continue
            itl = itl_from_chunk_times(times)
            if itl is None:
                pairs.itl_dropped += 1
            elif sr.output_tokens >= 2:
                pairs.itl.real.append(itl)
                pairs.itl.sim.append((sr.e2e - sr.ttft) / float(sr.output_tokens - 1))
        elif rec.streaming and rec.num_chunks >= 2 and sr.output_tokens >= 2:
            real_itl = float(rec.last_chunk_time_us - rec.first_chunk_time_us) / float(rec.num_chunks - 1)
            if real_itl >= 0:
                pairs.itl.real.append(real_itl)
                pairs.itl.sim.append((sr.e2e - sr.ttft) / float(sr.output_tokens - 1))
    pairs.unmatched_sim = sum(1 for sr in sim_results if sr.request_id not in matched_ids)
    return pairs


# --- statistics ----------------------------------------------------------------------------------


def percentile_from_sorted(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ascending values, linearly interpolated between the
    two nearest ranks; 0 for no values (BLIS's calibration and fitness share the formula)."""
    return percentile(list(sorted_values), p)


def pearson_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r by the sum formula (n·Σxy - Σx·Σy over the root of the variance terms); 0
    when a vector is constant, NaN when rounding makes the variance product negative (as Go's
    square root of a negative number gives)."""
    n = float(len(x))
    sum_x = sum_y = sum_xy = sum_x2 = sum_y2 = 0.0
    for xi, yi in zip(x, y):
        sum_x += xi
        sum_y += yi
        sum_xy += xi * yi
        sum_x2 += xi * xi
        sum_y2 += yi * yi
    num = n * sum_xy - sum_x * sum_y
    product = (n * sum_x2 - sum_x * sum_x) * (n * sum_y2 - sum_y * sum_y)
    den = math.sqrt(product) if product >= 0 else math.nan
    if den == 0:
        return 0.0
    return num / den


def quality_rating(mape: float, pearson_r: float) -> str:
    """excellent (MAPE < 10 %, r > 0.95), good (< 20 %, > 0.85), fair (< 35 %, > 0.70), else poor."""
    if mape < 0.10 and pearson_r > 0.95:
        return "excellent"
    if mape < 0.20 and pearson_r > 0.85:
        return "good"
    if mape < 0.35 and pearson_r > 0.70:
        return "fair"
    return "poor"


def compute_calibration(real: Sequence[float], sim: Sequence[float], metric_name: str) -> MetricComparison:
    """Compare paired real and simulated values of one metric; ValueError when the vectors are
    empty or of different lengths (``metric_name`` says which)."""
    if len(real) == 0 or len(sim) == 0:
        raise ValueError(f"empty latency vectors for {metric_name}")
    if len(real) != len(sim):
        raise ValueError(f"mismatched vector lengths for {metric_name}: real={len(real)} sim={len(sim)}")
    real_sorted = sorted(real)
    sim_sorted = sorted(sim)
    mape_sum = 0.0
    mape_count = 0
    bias_sum = 0.0
    for r, s in zip(real, sim):
        if r == 0:  # a relative error of a zero is undefined
            continue
        mape_sum += abs(r - s) / r
        mape_count += 1
        bias_sum += s - r
    mape = 0.0
    bias = ""
    if mape_count > 0:
        mape = mape_sum / float(mape_count)
        bias = "over-predict" if bias_sum > 0 else "under-predict" if bias_sum < 0 else "neutral"
    r_value = pearson_correlation(real, sim) if len(real) >= 3 else 0.0
    return MetricComparison(
        count=len(real),
        real_p50=percentile_from_sorted(real_sorted, 50),
        sim_p50=percentile_from_sorted(sim_sorted, 50),
        real_p90=percentile_from_sorted(real_sorted, 90),
        sim_p90=percentile_from_sorted(sim_sorted, 90),
        real_p95=percentile_from_sorted(real_sorted, 95),
        sim_p95=percentile_from_sorted(sim_sorted, 95),
        real_p99=percentile_from_sorted(real_sorted, 99),
        sim_p99=percentile_from_sorted(sim_sorted, 99),
        mape=mape,
        pearson_r=r_value,
        bias_direction=bias,
        quality=quality_rating(mape, r_value),
    )


def build_calibration_report(pairs: CalibrationPairs, config_match: Optional[ConfigMatch] = None) -> CalibrationReport:
    """The report of ``pairs``: counts, a comparison per metric that has pairs, the config match."""
    info = TraceInfo(
        num_requests=pairs.matched_count + pairs.excluded_warm_up + pairs.unmatched_real + pairs.excluded_non_ok,
        warm_up_excluded=pairs.excluded_warm_up,
        matched_pairs=pairs.matched_count,
        token_mismatches=pairs.token_mismatch_count,
        unmatched_real=pairs.unmatched_real,
        unmatched_sim=pairs.unmatched_sim,
        non_ok_excluded=pairs.excluded_non_ok,
        negative_latencies=pairs.negative_latencies,
        ttft_non_streaming_excluded=pairs.ttft_non_streaming,
    )
    metrics: dict[str, MetricComparison] = {}
    for name in METRIC_NAMES:
        pair: LatencyPair = getattr(pairs, name)
        if pair.real:
            metrics[name] = compute_calibration(pair.real, pair.sim, name)
    return CalibrationReport(info, metrics, config_match or ConfigMatch())


# --- output --------------------------------------------------------------------------------------


def _finite(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None  # JSON has no NaN


def report_dict(report: CalibrationReport, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The report as JSON-ready data (latencies in µs, MAPE a fraction); ``extra`` keys are
    added after ``trace_info`` (the CLI's normalization settings)."""
    info = {k: v for k, v in vars(report.trace_info).items() if not (k == "duration" and v == "")}
    out: dict[str, Any] = {"time_unit": "microseconds", "trace_info": info}
    out.update(extra or {})
    out["metrics"] = {
        name: {k: (_finite(v) if isinstance(v, float) else v) for k, v in vars(m).items()}
        for name, m in report.metrics.items()
    }
    cm = report.config_match
    out["config_match"] = {k: list(v) for k, v in vars(cm).items() if v}
    out["known_limitations"] = list(report.known_limitations)
    return out


def _ms(us: float) -> str:
    return f"{us / 1e3:.2f}"


def format_table(report: CalibrationReport) -> str:
    """The report as text: trace counts, then one row per metric (latencies in ms, MAPE in %)."""
    t = report.trace_info
    lines = [
        "=== Calibration ===",
        f"requests: {t.num_requests}  warm-up excluded: {t.warm_up_excluded}  non-ok excluded: "
        f"{t.non_ok_excluded}  matched: {t.matched_pairs}  unmatched: {t.unmatched_real} real, "
        f"{t.unmatched_sim} sim  token mismatches: {t.token_mismatches}",
        "",
    ]
    head = (
        "metric",
        "count",
        "real p50",
        "sim p50",
        "real p90",
        "sim p90",
        "real p99",
        "sim p99",
        "MAPE %",
        "pearson r",
        "bias",
        "quality",
    )
    rows = [head]
    for name in METRIC_NAMES:
        m = report.metrics.get(name)
        if m is None:
            rows.append((name, "0") + ("-",) * (len(head) - 2))
            continue
        r_text = f"{m.pearson_r:.3f}" if math.isfinite(m.pearson_r) else "nan"
        rows.append(
            (
                name,
                str(m.count),
                _ms(m.real_p50),
                _ms(m.sim_p50),
                _ms(m.real_p90),
                _ms(m.sim_p90),
                _ms(m.real_p99),
                _ms(m.sim_p99),
                f"{m.mape * 100:.2f}",
                r_text,
                m.bias_direction or "-",
                m.quality,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i in (0, 10, 11) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
            ).rstrip()
        )
    lines.append("(latencies in ms, client-side; MAPE over requests with a non-zero real value)")
    cm = report.config_match
    for label, items in (("matched", cm.matched), ("defaulted", cm.defaulted), ("overridden", cm.overridden)):
        if items:
            lines.append(f"config {label}: " + "; ".join(items))
    return "\n".join(lines) + "\n"
