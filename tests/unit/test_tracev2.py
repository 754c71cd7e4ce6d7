"""Trace v2: BLIS's header and CSV, written byte for byte as BLIS writes them, read with BLIS's
rules and one-line errors naming the file and row; ``--export-trace`` and its replay."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from testkit import DATA

from blis_gym.errors import WorkloadError
from blis_gym.plan import RunOptions, resolve
from blis_gym.workload.trace_replay import requests_from_trace, trace_from_requests
from blis_gym.workload.tracev2 import (
    COLUMNS,
    DATA_FILE,
    HEADER_FILE,
    TraceHeader,
    TraceNetwork,
    TraceRecord,
    TraceServer,
    TraceV2,
    data_csv,
    export_trace_v2,
    go_float_f,
    go_float_g,
    header_yaml,
    is_trace_v2,
    load_trace_v2,
)

V2 = DATA / "traces" / "v2"
MODEL = "meta-llama/llama-3.1-8b-instruct"


def copy_trace(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("name", ["go-export", "mixed", "real", "spec-export"])
def test_write_read_write_gives_the_same_bytes(name, tmp_path):
    """go-export was written by BLIS's own ExportTraceV2 (from a trace with quoting, newlines,
    leading spaces, a timestamp, every header section, huge and tiny floats): ours writes the
    same bytes."""
    trace = load_trace_v2(V2 / name)
    export_trace_v2(trace, tmp_path / "once")
    for f in (HEADER_FILE, DATA_FILE):
        assert (tmp_path / "once" / f).read_bytes() == (V2 / name / f).read_bytes(), f
    again = load_trace_v2(tmp_path / "once")
    assert again == trace
    export_trace_v2(again, tmp_path / "twice")
    for f in (HEADER_FILE, DATA_FILE):
        assert (tmp_path / "twice" / f).read_bytes() == (tmp_path / "once" / f).read_bytes()


def test_the_go_written_trace_reads_field_for_field():
    trace = load_trace_v2(V2 / "go-export")
    h = trace.header
    assert (h.trace_version, h.mode, h.warm_up_requests, h.created_at) == (2, "real", 5, "2026-12-01T10:00:00Z")
    assert h.server == TraceServer("vllm", MODEL, 2, 256, 16, 0.9, 4096)
    assert h.network == TraceNetwork(1234567.5)
    r = trace.records[1]
    assert (r.client_id, r.tenant_id, r.session_id, r.round_index, r.prefix_group) == ("c,2", " t2", "s 1", 3, "g")
    assert r.error_message == 'HTTP 500: "bad"\nline2' and r.status == "error" and r.streaming
    assert (r.send_time_us, r.first_chunk_time_us, r.last_chunk_time_us) == (
        1764626400000000,
        1764626400000800,
        1764626400001500,
    )
    assert trace.records[0].reason_ratio == 1e-7 and trace.records[2].reason_ratio == 123456789.125


def test_go_number_formats():
    assert [go_float_g(x) for x in (2.5, 0.9, 1e6, 123456.0, 1234567.0, 1e-5, 1e-4, 100.0, -0.0)] == [
        "2.5",
        "0.9",
        "1e+06",
        "123456",
        "1.234567e+06",
        "1e-05",
        "0.0001",
        "100",
        "-0",
    ]
    assert [go_float_f(x) for x in (1e-7, 1e21, 0.25, 3.0, 0.1 + 0.2)] == [
        "0.0000001",
        "1000000000000000000000",
        "0.25",
        "3",
        "0.30000000000000004",
    ]


def test_header_omits_empty_optional_fields_as_blis_does():
    assert (
        header_yaml(TraceHeader())
        == "trace_version: 2\ntime_unit: microseconds\nmode: generated\nwarm_up_requests: 0\n"
    )
    text = header_yaml(TraceHeader(server=TraceServer(model="m")))
    assert text.endswith("server:\n    model: m\n")
    assert header_yaml(TraceHeader(workload_spec="true")).splitlines()[-1] == 'workload_spec: "true"'


def test_short_rows_default_status_as_blis_reads_them(tmp_path):
    folder = tmp_path / "t"
    export_trace_v2(TraceV2(TraceHeader(), (TraceRecord(0, input_tokens=5, output_tokens=2),)), folder)
    lines = (folder / DATA_FILE).read_text().splitlines()
    (folder / DATA_FILE).write_text(lines[0] + "\n" + ",".join(lines[1].split(",")[:20]) + "\n")
    rec = load_trace_v2(folder).records[0]
    assert (rec.status, rec.error_message, rec.input_tokens) == ("ok", "", 5)


def _bad(tmp_path: Path, row: str) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / HEADER_FILE).write_text("trace_version: 2\ntime_unit: microseconds\nmode: real\nwarm_up_requests: 0\n")
    good = "0,c,t,s,,0,,true,10,5,0,0,0,0,0,0,1,2,3,4,ok,"
    (folder / DATA_FILE).write_text(",".join(COLUMNS) + "\n" + good + "\n" + row + "\n")
    return folder


@pytest.mark.parametrize(
    "row, needle",
    [
        (
            "1,c,t,s,,0,,true,ten,5,0,0,0,0,0,0,1,2,3,4,ok,",
            "row 2 (line 3): input_tokens: expected an integer, got 'ten'",
        ),
        (
            "1,c,t,s,,0,,maybe,10,5,0,0,0,0,0,0,1,2,3,4,ok,",
            "row 2 (line 3): streaming: expected true or false, got 'maybe'",
        ),
        ("1,c,t,s,,0,,true,10,5,0,0,0,0,x,0,1,2,3,4,ok,", "reason_ratio: expected a number"),
        ("1,c,t", "row 2 (line 3): 3 columns, expected 22"),
        ('1,"c,t', "malformed CSV"),
    ],
)
def test_a_malformed_row_is_one_error_naming_the_file_and_row(tmp_path, blis, row, needle):
    folder = _bad(tmp_path, row)
    with pytest.raises(WorkloadError, match=None) as err:
        load_trace_v2(folder)
    assert needle in str(err.value) and str(folder / DATA_FILE) in str(err.value)
    code, out, err_text = blis(
        "run", "--model", MODEL, "--workload", "traces", "--workload-traces-filepath", str(folder), "--log", "error"
    )
    assert code == 2 and out == "" and err_text.count("\n") == 1 and needle in err_text


@pytest.mark.parametrize(
    "header, needle",
    [
        ("trace_version: 2\nmode: real\nwarm_up: 3\n", "warm_up"),
        ("trace_version: two\n", "trace_version"),
        ("trace_version: 2\nmode: imagined\n", "mode: expected one of real, generated"),
    ],
)
def test_a_bad_header_names_the_file_and_key(tmp_path, header, needle):
    folder = _bad(tmp_path, "1,c,t,s,,0,,true,10,5,0,0,0,0,0,0,1,2,3,4,ok,")
    (folder / HEADER_FILE).write_text(header)
    with pytest.raises(Exception) as err:
        load_trace_v2(folder)
    assert needle in str(err.value) and HEADER_FILE in str(err.value)


def test_missing_header_and_v1_traces(tmp_path):
    folder = _bad(tmp_path, "1,c,t,s,,0,,true,10,5,0,0,0,0,0,0,1,2,3,4,ok,")
    assert is_trace_v2(folder) and is_trace_v2(folder / DATA_FILE)
    (folder / HEADER_FILE).unlink()
    with pytest.raises(WorkloadError, match="trace header not found"):
        load_trace_v2(folder / DATA_FILE)
    assert not is_trace_v2(DATA / "traces" / "shared_prefix.csv")  # BLIS's v1 CSV keeps its own reader


def test_replay_draws_prefixes_then_each_request_in_order():
    trace = load_trace_v2(V2 / "mixed")
    reqs = requests_from_trace(trace, seed=42)
    assert [r.id for r in reqs] == [f"request_{rec.request_id}" for rec in trace.records]
    assert [r.arrival for r in reqs] == [rec.arrival_time_us for rec in trace.records]
    for r, rec in zip(reqs, trace.records):
        assert r.n_in == rec.input_tokens + (50 if rec.prefix_group else 0) and r.n_out == rec.output_tokens
        assert (r.slo_class, r.tenant_id) == (rec.slo_class, rec.tenant_id)
    by_group: dict = {}
    for r, rec in zip(reqs, trace.records):
        if rec.prefix_group:
            by_group.setdefault(rec.prefix_group, set()).add(tuple(r.input[:50]))
    assert all(len(v) == 1 for v in by_group.values()) and len({next(iter(v)) for v in by_group.values()}) == 2
    other = requests_from_trace(trace, seed=43)
    assert any((a.input != b.input).any() for a, b in zip(reqs, other))


def test_export_trace_freezes_a_spec_and_replays_its_lengths(blis, tmp_path):
    args = ["--model", MODEL, "--workload-spec", "mixed-slo", "--num-requests", "60"]
    for out in ("a", "b"):
        code, _, err = blis("run", *args, "--export-trace", str(tmp_path / out))
        assert code == 0, err
    for f in (HEADER_FILE, DATA_FILE):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    original = resolve(
        RunOptions(model=MODEL, workload_spec="mixed-slo", num_requests=60, explicit=frozenset({"num_requests"}))
    ).requests
    trace = load_trace_v2(tmp_path / "a")
    assert trace.header.mode == "generated" and trace.header.workload_spec == "mixed-slo"
    assert {r.slo_class for r in trace.records} == {"realtime", "interactive", "batch"}
    assert [rec.streaming for rec in trace.records] == [r.client_id == "realtime" for r in original]
    replayed = requests_from_trace(trace, seed=1)
    assert [(r.n_in, r.n_out, r.arrival) for r in replayed] == [(r.n_in, r.n_out, r.arrival) for r in original]
    assert trace_from_requests(original, {"realtime": True}, workload_spec="mixed-slo") == trace


def test_export_trace_into_a_file_is_refused(blis, tmp_path):
    (tmp_path / "f").write_text("x")
    code, _, err = blis(
        "run", "--model", MODEL, "--num-requests", "5", "--export-trace", str(tmp_path / "f"), "--log", "error"
    )
    assert code == 2 and err.startswith("error: --export-trace") and "is a file" in err and err.count("\n") == 1


def test_data_csv_quotes_only_where_go_does():
    recs = (TraceRecord(0, client_id="plain"), TraceRecord(1, client_id=" lead"), TraceRecord(2, client_id='q"x'))
    rows = data_csv(recs).splitlines()[1:]
    assert [r.split(",")[1] for r in rows[:2]] == ["plain", '" lead"'] and '"q""x"' in rows[2]
