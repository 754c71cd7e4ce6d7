"""``blis replay`` (upstream's flags): a trace v2 header and data file, simulated as ``blis run``."""

from __future__ import annotations

import json

import pytest
from test_cli_errors import assert_one_error, invoke

MODEL = "meta-llama/llama-3.1-8b-instruct"
RUN = ["--log", "error", "--model", MODEL, "--num-instances", "2"]

NEWER_COLUMNS = (
    "request_id,client_id,tenant_id,slo_class,session_id,round_index,prefix_group,prefix_length,streaming,"
    "input_tokens,output_tokens,text_tokens,image_tokens,audio_tokens,video_tokens,reason_ratio,model,"
    "deadline_us,server_input_tokens,arrival_time_us,send_time_us,first_chunk_time_us,last_chunk_time_us,"
    "num_chunks,status,error_message,finish_reason"
)


def replay_args(folder, *extra, run=RUN) -> list[str]:
    """``blis replay`` of the trace folder ``folder`` with ``blis run`` flags ``run``, then ``extra``."""
    return [
        "replay",
        "--trace-header",
        str(folder / "trace_header.yaml"),
        "--trace-data",
        str(folder / "trace_data.csv"),
        *run,
        *extra,
    ]


def _replay(blis, folder, *extra):
    return blis(*replay_args(folder, *extra))


@pytest.mark.parametrize(
    "workload",
    [
        ["--num-requests", "120", "--rate", "15"],
        ["--workload-spec", "mixed-slo", "--num-requests", "150"],
        ["--num-requests", "150", "--rate", "20", "--prefix-tokens", "256", "--prefix-groups", "3"],
        ["--workload-spec", "chat-sessions", "--num-requests", "150"],
    ],
    ids=["distribution", "spec", "shared-prefixes", "sessions"],
)
def test_replaying_an_exported_trace_prints_the_run_it_came_from(blis, tmp_path, workload):
    code, run_out, _ = blis("run", *RUN, *workload, "--export-trace", str(tmp_path / "t"))
    assert code == 0
    code, replay_out, err = _replay(blis, tmp_path / "t", "--results-path", str(tmp_path / "r.json"))
    assert code == 0, err
    assert replay_out == run_out
    rows = json.loads((tmp_path / "r.json").read_text())
    block = json.loads(run_out.split("=== Simulation Metrics ===")[-1].split("===")[0])
    assert len(rows) == block["completed_requests"]
    assert [r["request_id"] for r in rows] == sorted(r["request_id"] for r in rows)
    assert all(r["e2e_us"] >= r["ttft_us"] > 0 for r in rows)


def _newer_trace(folder, version=3, targets=True):
    folder.mkdir()
    header = f"trace_version: {version}\ntime_unit: microseconds\nmode: real\nwarm_up_requests: 0\nworkload_seed: 7\n"
    if targets:
        header += "goodput_slo_targets:\n  standard:\n    e2e_ms: 3600000\n"
    (folder / "trace_header.yaml").write_text(header)
    rows = [NEWER_COLUMNS]
    for i in range(40):
        group = f"g{i % 2}"
        rows.append(f"{i},c,,standard,,0,{group},512,true,64,32,64,0,0,0,0,,0,0,{i * 20000},0,0,0,0,ok,,stop")
    (folder / "trace_data.csv").write_text("\n".join(rows) + "\n")


def test_without_the_token_file_a_shared_prefix_replays_with_drawn_tokens(blis, tmp_path):
    """BLIS's own files alone (no trace_tokens.npz) replay as BLIS replays them: drawn token
    ids, so prompts that shared a prefix no longer do."""
    workload = ["--num-requests", "150", "--rate", "20", "--prefix-tokens", "256"]
    code, run_out, _ = blis("run", *RUN, *workload, "--export-trace", str(tmp_path / "t"))
    (tmp_path / "t" / "trace_tokens.npz").unlink()
    code, replay_out, err = _replay(blis, tmp_path / "t")
    assert code == 0, err
    assert replay_out != run_out


def test_upstreams_newer_layout_replays_its_prefix_groups_and_goodput_targets(blis, tmp_path):
    _newer_trace(tmp_path / "t")
    code, out, err = _replay(blis, tmp_path / "t", "--num-instances", "1")
    assert code == 0, err
    block = json.loads(out.split("=== Simulation Metrics ===")[-1].split("===")[0])
    assert block["total_input_tokens"] == 40 * (512 + 64)  # each group's 512-token prefix prepended
    assert block["slo_attainment"] == 1.0  # the header's targets apply
    hit = float(out.split("Cache Hit Rate: ")[1].split()[0])
    assert hit >= 0.75  # the two groups' 32-block prefixes are shared (the rest, 4 blocks a request, are not)


def test_a_header_of_an_unsupported_version_is_refused(blis, tmp_path):
    _newer_trace(tmp_path / "t", version=7, targets=False)
    assert_one_error(*invoke(blis, replay_args(tmp_path / "t")), "trace_version 7", "supported: 2")


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--session-mode", "open"], ["--session-mode", "closed-loop"]),
        (["--trace-data", "/nonexistent.csv"], ["--trace-data", "no such file"]),
    ],
)
def test_bad_replay_flags_get_one_error_line(blis, tmp_path, extra, words):
    blis("run", *RUN, "--num-requests", "5", "--export-trace", str(tmp_path / "t"))
    args = replay_args(tmp_path / "t", *extra)
    assert_one_error(*invoke(blis, args), *words)


def _session_trace(folder):
    folder.mkdir()
    (folder / "trace_header.yaml").write_text(
        "trace_version: 2\ntime_unit: microseconds\nmode: real\nwarm_up_requests: 0\n"
    )
    cols = (
        "request_id,client_id,tenant_id,slo_class,session_id,round_index,prefix_group,streaming,input_tokens,"
        "output_tokens,text_tokens,image_tokens,audio_tokens,video_tokens,reason_ratio,arrival_time_us,"
        "send_time_us,first_chunk_time_us,last_chunk_time_us,num_chunks,status,error_message"
    )
    rows = [cols]
    rid = 0
    for k in range(3):
        for s, start in (("a", 0), ("b", 5000)):
            rows.append(f"{rid},c,,,{s},{k},,true,{200 + 50 * k},40,0,0,0,0,0,{start + k * 1000},0,0,0,0,ok,")
            rid += 1
    rows.append(f"{rid},c,,,,0,,true,100,10,0,0,0,0,0,2000,0,0,0,0,ok,")
    (folder / "trace_data.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("think_ms", [None, 50.0])
def test_closed_loop_rounds_arrive_a_think_time_after_their_previous_round_completes(tmp_path, think_ms):
    from blis_gym.plan import RunOptions, resolve, simulate

    _session_trace(tmp_path / "t")
    opts = RunOptions(
        model=MODEL,
        log="error",
        workload="traces",
        workload_traces_filepath=str(tmp_path / "t" / "trace_data.csv"),
        trace_header=str(tmp_path / "t" / "trace_header.yaml"),
    )
    plan = resolve(opts)
    recorded = {r.id: r.arrival for r in plan.requests}
    result = simulate(plan, closed_loop=True, think_ms=think_ms)
    assert result.aggregate.completed == 7 and result.accounted == 7
    e2e = result.aggregate.e2es
    by_id = {r.id: r for r in plan.requests}
    for s in (0, 1):
        rounds = [by_id[f"request_{s + 2 * k}"] for k in range(3)]
        for prev, nxt in zip(rounds, rounds[1:]):
            think = 1000 if think_ms is None else 50_000  # the recorded gap, or the flag
            assert nxt.arrival == prev.arrival + int(e2e[prev.id]) + think
    assert by_id["request_6"].arrival == recorded["request_6"]  # no session: as recorded


def test_think_time_needs_the_closed_loop(blis, tmp_path):
    _session_trace(tmp_path / "t")
    args = replay_args(tmp_path / "t", "--think-time-ms", "5")
    assert_one_error(*invoke(blis, args), "--think-time-ms", "closed-loop")
