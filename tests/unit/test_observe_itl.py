"""The ITL file of ``blis observe --record-itl`` (BLIS's format), how ``blis calibrate`` takes real
ITL from it, and observe's duration flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blis_gym.calibrate.compare import SimResult, itl_from_chunk_times, prepare_calibration_pairs
from blis_gym.cli.observe_command import parse_duration
from blis_gym.errors import ConfigError, WorkloadError
from blis_gym.workload.itl import ITL_FILE, itl_csv, itl_path, load_itl, write_itl
from blis_gym.workload.tracev2 import TraceHeader, TraceRecord, TraceServer, TraceV2, export_trace_v2

MODEL = "meta-llama/llama-3.1-8b-instruct"


def test_format_round_trip(tmp_path: Path):
    rows = [(3, [100, 150, 210]), (7, [5]), (12, [])]
    text, n = itl_csv(rows)
    assert n == 4
    assert text == "request_id,chunk_index,timestamp_us\n3,0,100\n3,1,150\n3,2,210\n7,0,5\n"
    path = tmp_path / ITL_FILE
    assert write_itl(path, rows) == 4 and path.read_text() == text
    assert load_itl(path) == {3: [100, 150, 210], 7: [5]}
    # Rows in any order come back in chunk order (BLIS sorts them too).
    path.write_text("request_id,chunk_index,timestamp_us\n3,2,210\n3,0,100\n3,1,150\n")
    assert load_itl(path) == {3: [100, 150, 210]}
    assert itl_path(tmp_path) == tmp_path / ITL_FILE
    assert itl_path(tmp_path / "trace_data.csv") == tmp_path / "trace_data.itl.csv"


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "not an ITL file: the first row must be request_id,chunk_index,timestamp_us"),
        ("a,b,c\n1,0,5\n", "not an ITL file"),
        ("request_id,chunk_index,timestamp_us\n1,0\n", "row 2 has 2 columns, expected 3"),
        ("request_id,chunk_index,timestamp_us\n1,0,x\n", "row 2: values must be integers"),
        ("request_id,chunk_index,timestamp_us\n1,0,5\n1,-1,6\n", "row 3: values must be >= 0"),
        ("request_id,chunk_index,timestamp_us\n1,0,5\n1,0,6\n", "row 3: chunk 0 of request 1 given twice"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, text: str, words: str):
    path = tmp_path / "itl.csv"
    path.write_text(text)
    with pytest.raises(WorkloadError, match=words) as info:
        load_itl(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(WorkloadError, match="cannot read the ITL file"):
        load_itl(tmp_path / "missing.csv")


def test_real_itl_is_the_mean_gap_without_negative_ones():
    assert itl_from_chunk_times([0, 10, 30, 60]) == 20.0
    assert itl_from_chunk_times([0, 10, 5, 25]) == 15.0  # the -5 gap is left out (clock skew)
    assert itl_from_chunk_times([10, 5]) is None
    assert itl_from_chunk_times([10]) is None


def _rec(rid: int, chunks: int, streaming: bool = True, status: str = "ok") -> TraceRecord:
    return TraceRecord(
        rid,
        streaming=streaming,
        input_tokens=100,
        output_tokens=5,
        send_time_us=0,
        first_chunk_time_us=1000,
        last_chunk_time_us=9000,
        num_chunks=chunks,
        status=status,
    )


def test_pairs_take_real_itl_from_the_chunk_times():
    records = [_rec(0, 5), _rec(1, 5), _rec(2, 5), _rec(3, 5), _rec(4, 5, status="error"), _rec(5, 1, streaming=False)]
    sims = [SimResult(i, 800.0, 5000.0, 100, 5) for i in range(6)]
    chunks = {
        0: [1000, 3000, 5000, 7000, 9000],  # 2000 apart
        1: [1000, 1500, 1400, 9000],  # one negative gap left out: (500 + 7600) / 2
        2: [9000, 8000],  # only a negative gap: dropped
        4: [1000, 2000],  # not ok: not compared at all
    }
    pairs = prepare_calibration_pairs(records, sims, chunk_times=chunks)
    assert pairs.itl_from_file and pairs.itl.real == [2000.0, 4050.0]
    assert pairs.itl.sim == [1050.0, 1050.0]  # (5000 - 800) / 4, as without the file
    assert (pairs.itl_dropped, pairs.itl_missing) == (1, 1)  # request 3 streamed but has no chunk times
    plain = prepare_calibration_pairs(records, sims)
    assert not plain.itl_from_file and plain.itl.real == [2000.0] * 4  # (9000 - 1000) / 4


def test_calibrate_reads_the_trace_s_itl_file(blis, tmp_path: Path):
    """The command finds trace_data.itl.csv beside the trace (or takes --itl-data), says so, and
    reports ITL from it; a bad ITL file is one error line, exit 2, before any simulation."""
    header = TraceHeader(mode="real", created_at="2026-01-01T00:00:00Z", server=TraceServer(model=MODEL))
    records = tuple(
        TraceRecord(
            i,
            streaming=True,
            input_tokens=200,
            output_tokens=6,
            arrival_time_us=100_000 * i,
            send_time_us=100_000 * i,
            first_chunk_time_us=100_000 * i + 30_000,
            last_chunk_time_us=100_000 * i + 80_000,
            num_chunks=6,
        )
        for i in range(6)
    )
    folder = tmp_path / "obs"
    export_trace_v2(TraceV2(header, records), folder)
    out = tmp_path / "cal.json"
    code, stdout, err = blis("calibrate", str(folder), "--out", str(out))
    assert code == 0, err
    assert "real ITL from" not in stdout and "itl_file" not in json.loads(out.read_text())
    assert json.loads(out.read_text())["metrics"]["itl"]["real_p50"] == 10_000.0  # (80 - 30 ms) / 5

    # Chunk times 7 ms apart but for one 15 ms gap: each request's mean gap is 8.6 ms.
    write_itl(
        folder / ITL_FILE,
        [(r.request_id, [r.first_chunk_time_us + 1000 * g for g in (0, 7, 14, 21, 28, 43)]) for r in records],
    )
    code, stdout, err = blis("calibrate", str(folder), "--out", str(out))
    assert code == 0, err
    assert f"(real ITL from the chunk times in {folder / ITL_FILE}: 6 requests)" in stdout
    doc = json.loads(out.read_text())
    assert doc["metrics"]["itl"]["real_p50"] == pytest.approx(8600.0)
    assert doc["itl_file"]["itl_pairs"] == 6

    other = tmp_path / "other.csv"
    other.write_text("request_id,chunk_index,timestamp_us\n0,0,1\n0,1,oops\n")
    code, stdout, err = blis("calibrate", str(folder), "--out", str(out), "--itl-data", str(other))
    lines = err.strip().splitlines()
    assert code == 2 and lines == [f"error: {other}: row 3: values must be integers, got 0,1,oops"], err


def test_duration_flag():
    assert parse_duration("--prewarm-duration", "0") == 0
    assert parse_duration("--prewarm-duration", "2.5") == 2.5
    assert parse_duration("--prewarm-duration", "500ms") == 0.5
    assert parse_duration("--prewarm-duration", "30s") == 30
    assert parse_duration("--prewarm-duration", "2m") == 120
    assert parse_duration("--prewarm-duration", "1h") == 3600
    for bad in ("-1", "1x", "", "inf", "nan", "1e999", "2 m s"):
        with pytest.raises(ConfigError, match="--prewarm-duration must be a duration >= 0"):
            parse_duration("--prewarm-duration", bad)
