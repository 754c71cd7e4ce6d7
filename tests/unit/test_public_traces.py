"""Production traces as workloads: the Mooncake, Azure and BurstGPT readers (fixtures in the repo,
the shipped traces, and ../shared/traces where it exists), shared prompt segments, windows and
speed-ups to the microsecond, and every bad input on one line."""

from __future__ import annotations

import gzip
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from testkit import DATA, ROOT, metric_blocks

from blis_gym.config.datafiles import SHIPPED_TRACES
from blis_gym.engine.blockhash import prefix_keys
from blis_gym.engine.segments import SegmentedPrompt, SegmentStore
from blis_gym.plan import RunOptions, generate_requests
from blis_gym.workload import public_traces as pt
from blis_gym.workload.traces import write_trace
from blis_gym.workload.windows import TraceWindow

PUBLIC = DATA / "traces" / "public"
SHARED_TRACES = ROOT.parent / "shared" / "traces"
MODEL = "meta-llama/llama-3.1-8b-instruct"


def replay(blis, trace, *flags):
    """``blis run`` of the model on ``trace`` (a path or a shipped name), quietly: (code, out, err)."""
    return blis(
        "run",
        "--model",
        MODEL,
        "--workload",
        "traces",
        "--workload-traces-filepath",
        str(trace),
        "--log",
        "error",
        *map(str, flags),
    )


def requests_of(path, **kw):
    return generate_requests(RunOptions(model=MODEL, workload="traces", workload_traces_filepath=str(path), **kw))


# --- segments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [1, 7, 16, 48, 512, 1024])
def test_segment_keys_are_the_tokens_keys(block_size):
    """A segmented prompt's keys are exactly blockhash's keys of its tokens, whatever the block
    size (sizes that do not divide a segment take the token path), partial last segment included."""
    store = SegmentStore(512)
    for segments, length in (([0, 1, 2], 1124), ([0, 1], 1024), ([0, 3], 600), ([9], 1), ([], 0)):
        prompt = SegmentedPrompt(store, segments, length)
        tokens = np.asarray(prompt)
        assert len(tokens) == len(prompt) == length
        assert prompt.keys(block_size) == prefix_keys(tokens, block_size)
        assert np.array_equal(prompt[3:700], tokens[3:700]) and prompt.tobytes() == tokens.tobytes()
    with pytest.raises(ValueError, match="cannot hold"):
        SegmentedPrompt(store, [0, 1], 1025)


def test_shared_segments_share_tokens_and_keys_only_along_the_same_path():
    store = SegmentStore(512)
    a = SegmentedPrompt(store, [0, 1, 2], 1536)
    b = SegmentedPrompt(store, [0, 1, 3], 1536)
    c = SegmentedPrompt(store, [5, 1, 2], 1536)  # the same blocks after another first block
    ka, kb, kc = (p.keys(16) for p in (a, b, c))
    assert ka[0][:64] == kb[0][:64] and ka[0][64] != kb[0][64]  # chained: a common 1024-token prefix
    assert ka[1][32:] == kc[1][32:] and not set(ka[0]) & set(kc[0])  # own keys shared, prefixes not
    assert ka[0][10] is kb[0][10]  # one int object: a request's keys point into the store


# --- readers -------------------------------------------------------------------------------------


def test_mooncake_fixture_and_its_gzip():
    plain, gz = (pt.read_trace(PUBLIC / f, pt.MOONCAKE) for f in ("mooncake.jsonl", "mooncake.jsonl.gz"))
    assert pt.detect_format(PUBLIC / "mooncake.jsonl.gz") == pt.detect_format(PUBLIC / "mooncake.jsonl") == "mooncake"
    for a, b in zip((plain.arrival_us, plain.n_in, plain.n_out), (gz.arrival_us, gz.n_in, gz.n_out)):
        assert np.array_equal(a, b)
    assert plain.arrival_us.tolist() == [0, 250_000, 250_000, 1_200_000, 1_500_000, 2_750_000, 4_000_000, 4_001_000]
    reqs = requests_of(PUBLIC / "mooncake.jsonl")
    assert [r.id for r in reqs] == [f"request_{i}" for i in range(8)]
    assert [r.n_in for r in reqs] == [1100, 1024, 1536, 1700, 300, 2100, 513, 1]
    keys = [r.input_keys(16) for r in reqs]
    assert keys[1] == keys[0][:64] == keys[2][:64]  # hash ids 0, 1: 1024 shared tokens
    assert keys[3][:68] == keys[0][:68] and keys[5][: 1700 // 16] == keys[3][: 1700 // 16]
    assert not set(keys[4]) & set(keys[0])


def test_azure_timestamps_are_exact_to_the_microsecond():
    table = pt.read_trace(PUBLIC / "azure_2023.csv", pt.AZURE)
    # 18:15:46.6805900 is the origin; .3425409 truncates to .342540 (whole microseconds)
    assert table.arrival_us.tolist() == [0, 3_661_950, 3_661_950, 15_319_410, 73_419_410]
    assert table.n_in.tolist() == [374, 396, 879, 1101, 20] and table.n_out.tolist() == [44, 109, 4, 0, 17]
    t24 = pt.read_trace(PUBLIC / "azure_2024.csv", pt.AZURE)  # the 2024 release: same columns
    assert t24.arrival_us.tolist() == [0, 1_113_608, 1_490_152]
    assert pt.detect_format(PUBLIC / "azure_2024.csv") == "azure"


def test_burstgpt_both_releases():
    table = pt.read_trace(PUBLIC / "burstgpt.csv", pt.BURSTGPT)
    assert table.arrival_us.tolist() == [5_000_000, 45_000_000, 45_250_000, 118_000_000]
    assert table.n_in.tolist() == [472, 1087, 417, 0]
    v2 = pt.read_trace(PUBLIC / "burstgpt_v2.csv", pt.BURSTGPT)  # Session ID and Elapsed time columns
    assert v2.arrival_us.tolist() == [5_000_000, 6_500_000] and v2.n_in.tolist() == [472, 900]


def test_shipped_traces_load_by_name_and_are_the_published_files():
    counts = {
        "mooncake-conversation": 12_031,
        "mooncake-synthetic": 3_993,
        "azure-conversation": 19_366,
        "azure-code": 8_819,
    }
    assert set(SHIPPED_TRACES) == set(counts)
    for name, rows in counts.items():
        path = pt.trace_location(name)
        table = pt.read_trace(path, pt.detect_format(path))
        assert len(table) == rows, name
        assert (ROOT / "configs" / "traces" / SHIPPED_TRACES[name]).is_file()
    conv = pt.read_trace(pt.trace_location("mooncake-conversation"), pt.MOONCAKE)
    assert int(conv.n_in.sum()) == 144_793_823 and conv.arrival_us[-1] == 3_536_999_000
    assert (ROOT / "configs" / "traces" / "LICENSE-Mooncake-Apache-2.0.txt").is_file()
    if SHARED_TRACES.is_dir():  # the shipped copies are the published files, byte for byte
        for file in SHIPPED_TRACES.values():
            assert (ROOT / "configs" / "traces" / file).read_bytes() == (SHARED_TRACES / file).read_bytes(), file


# --- windows and speed-ups -------------------------------------------------------------------------


def test_window_and_speedup_arithmetic_is_exact():
    arrivals = np.array([0, 9_999_999, 10_000_000, 12_345_679, 14_999_999, 15_000_000], dtype=np.int64)
    w = TraceWindow.from_flags(10, 5, 0.3)
    assert w.selects(arrivals).tolist() == [False, False, True, True, True, False]  # [start, end)
    for t in arrivals[w.selects(arrivals)].tolist():
        assert w.arrival(t) == math.floor(Fraction(t - 10_000_000) / Fraction("0.3"))
    w11 = TraceWindow.from_flags(0, 0, 1.1)
    assert w11.arrival(33) == 30 and 33 / 1.1 < 30  # exactly 30, where floats give 29.999999999999996
    assert TraceWindow.from_flags(0.000_001, 0, 1).start_us == 1 and TraceWindow.from_flags(0, 0, 1).whole
    big = TraceWindow.from_flags(0, 0, 7)
    assert big.arrival(3_536_999_000) == 3_536_999_000 // 7


def test_windows_apply_to_every_format(tmp_path):
    kw = dict(trace_start=0.25, trace_duration=2.5, trace_speedup=2)
    mc = requests_of(PUBLIC / "mooncake.jsonl", **kw)
    assert [r.arrival for r in mc] == [0, 0, 475_000, 625_000] and [r.n_in for r in mc] == [1024, 1536, 1700, 300]
    assert [r.id for r in mc] == [f"request_{i}" for i in range(4)]
    az = requests_of(PUBLIC / "azure_2023.csv", trace_start=3.661950, trace_duration=11.66, trace_speedup=4)
    assert [r.arrival for r in az] == [0, 0, 2_914_365]
    # BLIS's CSV: the same window of the same requests written out token by token
    path = tmp_path / "w.csv"
    write_trace(requests_of(PUBLIC / "mooncake.jsonl"), path)
    from_csv = requests_of(path, **kw)
    assert [(r.id, r.arrival, r.n_in, r.n_out) for r in from_csv] == [(r.id, r.arrival, r.n_in, r.n_out) for r in mc]
    assert [r.input_keys(16) for r in from_csv] == [r.input_keys(16) for r in mc]
    # trace v2: the window keeps the trace's own request ids
    from blis_gym.workload.trace_replay import trace_from_requests
    from blis_gym.workload.tracev2 import export_trace_v2

    export_trace_v2(trace_from_requests(requests_of(PUBLIC / "mooncake.jsonl"), {}), tmp_path / "v2")
    v2 = requests_of(tmp_path / "v2", **kw)
    assert [(r.id, r.arrival, r.n_in) for r in v2] == [
        ("request_1", 0, 1024),
        ("request_2", 0, 1536),
        ("request_3", 475_000, 1700),
        ("request_4", 625_000, 300),
    ]


def test_a_mooncake_window_runs_as_the_same_window_written_as_blis_csv(blis, tmp_path):
    """Replaying a window of the shipped conversation trace gives, to the last digit, what the
    same requests written as BLIS's CSV (shared blocks as shared tokens) give."""
    window = ["--trace-start", "300", "--trace-duration", "20", "--trace-speedup", "2"]
    csv_path = tmp_path / "window.csv"
    write_trace(requests_of("mooncake-conversation", trace_start=300, trace_duration=20, trace_speedup=2), csv_path)
    assert max(len(line) for line in open(csv_path)) > 131_072  # beyond csv's default field limit
    cluster = ["--num-instances", "3", "--routing-policy", "weighted"]
    code, from_trace, err = replay(blis, "mooncake-conversation", *window, *cluster, "--results-path", tmp_path / "a")
    assert code == 0, err
    code, from_csv, err = replay(blis, csv_path, *cluster, "--results-path", tmp_path / "b")
    assert code == 0, err
    assert from_trace == from_csv
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text()
    cluster = metric_blocks(from_trace)[-1]
    assert cluster["completed_requests"] > 50 and cluster["ttft_mean_ms"] > 0


def test_what_a_window_does_depends_on_what_is_shared_not_on_the_token_values(blis, tmp_path):
    """The same window written as BLIS's CSV with every token id renamed (t -> 7t + 3: the same
    sharing, other block keys) prints what the trace itself prints."""
    reqs = requests_of("mooncake-conversation", trace_start=900, trace_duration=15, trace_speedup=3)
    for r in reqs:
        r.input = np.asarray(r.input) * 7 + 3
        r.output = r.output * 7 + 3
    write_trace(reqs, tmp_path / "renamed.csv")
    cluster = ["--num-instances", "3", "--routing-policy", "prefix-affinity"]
    _, from_trace, _ = replay(
        blis, "mooncake-conversation", "--trace-start", 900, "--trace-duration", 15, "--trace-speedup", 3, *cluster
    )
    code, renamed, err = replay(blis, tmp_path / "renamed.csv", *cluster)
    assert code == 0, err
    assert renamed == from_trace and metric_blocks(renamed)[-1]["completed_requests"] == len(reqs)


def test_a_100k_token_csv_row_is_read(blis, tmp_path):
    path = tmp_path / "long.csv"
    tokens = list(range(1, 100_001))
    path.write_text(
        f'arrival_time,request_id,model,prefill_tokens,decode_tokens\n0.0,r,m,"{json.dumps(tokens)}","[1,2,3]"\n'
    )
    code, out, err = replay(blis, str(path))
    assert code == 0, err
    assert metric_blocks(out)[-1]["total_input_tokens"] == 100_000


# --- bad input -------------------------------------------------------------------------------------


def the_error(err: str) -> str:
    """The one ``error:`` line of a failed command's stderr (diagnostics may precede it)."""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize(
    "name, text, needle",
    [
        (
            "bad.jsonl",
            '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n{"timestamp": 1,\n',
            "line 2: not a JSON object",
        ),
        ("bad.jsonl", '{"timestamp": 0, "input_length": 5, "hash_ids": [1]}\n', "line 1: output_length is missing"),
        (
            "bad.jsonl",
            '{"timestamp": 0, "input_length": "x", "output_length": 1, "hash_ids": [1]}\n',
            "line 1: input_length must be a whole number of tokens >= 0, got 'x'",
        ),
        (
            "bad.jsonl",
            '{"timestamp": 0, "input_length": 5, "output_length": -3, "hash_ids": [1]}\n',
            "line 1: output_length must be a whole number of tokens >= 0, got -3",
        ),
        (
            "bad.jsonl",
            '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": []}\n',
            "line 1: input_length 5 needs 1 hash ids of 512 tokens, hash_ids has 0",
        ),
        (
            "bad.jsonl",
            '{"timestamp": 9, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n'
            '{"timestamp": 3, "input_length": 5, "output_length": 1, "hash_ids": [2]}\n',
            "line 2: timestamps must not decrease",
        ),
        (
            "bad.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,12,x\n",
            "line 2: GeneratedTokens must be a whole number of tokens >= 0, got 'x'",
        ),
        ("bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,12,3\n", "line 2: TIMESTAMP must be a date"),
        (
            "bad.csv",
            "Timestamp,Model,Request tokens,Response tokens\n5,m,-2,4\n",
            "line 2: Request tokens must be a whole number of tokens >= 0, got '-2'",
        ),
        (
            "bad.csv",
            "Timestamp,Model,Request tokens,Response tokens\nsoon,m,2,4\n",
            "line 2: Timestamp must be a number of seconds >= 0, got 'soon'",
        ),
    ],
)
def test_bad_trace_rows_fail_on_one_line(blis, tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    results = tmp_path / "results.json"
    code, out, err = replay(blis, str(path), "--results-path", str(results))
    assert code == 2 and out == ""
    line = the_error(err)
    assert line.startswith(f"error: {path}: ") and needle in line, err
    assert not results.exists()


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--trace-speedup", "0"], "--trace-speedup must be a finite number > 0, got 0.0"),
        (["--trace-speedup", "-2"], "--trace-speedup must be a finite number > 0, got -2.0"),
        (["--trace-start", "-1"], "--trace-start must be a finite number of seconds >= 0, got -1.0"),
        (
            ["--trace-start", "5000", "--trace-duration", "10"],
            "no request arrives in the window [5000 s, 5010 s) (--trace-start 5000, --trace-duration 10)",
        ),
    ],
)
def test_bad_windows_fail_on_one_line(blis, tmp_path, flags, needle):
    code, out, err = replay(blis, "azure-code", *flags)
    assert code == 2 and out == "" and needle in the_error(err)


def test_an_unreadable_gzip_is_one_line(blis, tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    data = gzip.compress(b'{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1]}\n' * 50)
    path.write_bytes(data[: len(data) // 2])  # cut short
    code, out, err = replay(blis, str(path))
    assert code == 2 and str(path) in the_error(err)


def test_trace_flags_are_copied_by_cli_flags_and_sweepable(tmp_path):
    from blis_gym.plan import cli_flags
    from blis_gym.sweep import load_sweep

    opts = RunOptions(
        model=MODEL,
        workload="traces",
        workload_traces_filepath="azure-code",
        trace_start=60.0,
        trace_duration=30.0,
        trace_speedup=2.5,
    )
    assert cli_flags(opts)[-6:] == ["--trace-start", "60.0", "--trace-duration", "30.0", "--trace-speedup", "2.5"]
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "base: {model: %s, workload: traces, workload_traces_filepath: azure-code, trace_duration: 30}\n"
        "axes:\n  - trace_start: [0, 600]\n  - trace_speedup: [1, 4]\n" % MODEL
    )
    points = load_sweep(str(sweep)).points
    assert [(p.options["trace_start"], p.options["trace_speedup"]) for p in points] == [
        (0.0, 1.0),
        (0.0, 4.0),
        (600.0, 1.0),
        (600.0, 4.0),
    ]


def test_a_drawn_window_in_a_lull_is_drawn_again(blis):
    """Azure's code trace has lulls of minutes: a window drawn from the spans that holds no request
    is drawn again from the seed's next draw, in the env and in blis run alike."""
    table = pt.read_trace(pt.trace_location("azure-code"), pt.AZURE)
    draws = [TraceWindow.from_flags(0, 10, 1, "0:3436", seed=2, held_out=2**30, draw=k) for k in range(3)]
    assert [w.selects(table.arrival_us).any() for w in draws] == [False, False, True]  # two lulls, then traffic
    chosen = TraceWindow.choose(table.arrival_us, 0, 10, 1, "0:3436", 2, 2**30)
    assert chosen == draws[2]
    assert chosen.selects(table.arrival_us).sum() == 146
    code, out, err = replay(
        blis, "azure-code", "--trace-duration", "10", "--trace-window-spans", "0:3436", "--seed", "2"
    )
    assert code == 0, err
    assert metric_blocks(out)[-1]["injected_requests"] == 146
