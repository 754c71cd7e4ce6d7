"""Every bad input gets one clear ``error:`` line on stderr and exit code 2.

The rule: malformed CSV or YAML, unknown model or policy, bad numbers, missing
files, bad flag values and flags for features not built yet each print exactly
one line starting with ``error: `` that names the flag/file/line at fault, exit
with code 2, never show a traceback and never leave a (half-)written results
file. Every in-process case passes ``--log error`` so that warnings (e.g. "no
--tp given; using default") cannot add lines, and fails during validation,
before any simulation runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from testkit import ROOT

MODEL = "meta-llama/llama-3.1-8b-instruct"
GOOD_ROW = '0.0,req_0,llama,"[1,2,3]","[4,5]"'
HEADER = "arrival_time,request_id,model,prefill_tokens,decode_tokens"


# --- helpers ---------------------------------------------------------------------------------


def base(*extra: str, model: str | None = MODEL) -> list[str]:
    """``run --log error --model MODEL EXTRA...``; later flags override earlier ones."""
    args = ["run", "--log", "error"]
    if model is not None:
        args += ["--model", model]
    return args + list(extra)


def invoke(blis, args: list[str]):
    """Run the CLI in-process; an exception escaping ``main`` would be a traceback for users."""
    try:
        return blis(*args)
    except BaseException as exc:
        pytest.fail(
            f"blis {' '.join(args)}: uncaught {type(exc).__module__}.{type(exc).__name__}: "
            f"{exc} (a user would see a traceback)"
        )


def assert_one_error(code: int, out: str, err: str, *keywords: str) -> str:
    """Exit 2, one ``error: `` line naming every keyword, no traceback, nothing on stdout."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert line.strip() != "error:", "empty error message"
    for word in keywords:
        assert word in line, f"{word!r} not in {line!r}"
    assert code == 2, f"exit code {code}, stderr: {err}"
    assert out == "", f"a failed run printed to stdout: {out[:200]!r}"
    return line


def check(blis, args: list[str], *keywords: str) -> str:
    code, out, err = invoke(blis, args)
    return assert_one_error(code, out, err, *keywords)


# --- model ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, keywords",
    [
        pytest.param(base(model="nosuch/model"), ("--model", "nosuch/model", "known models"), id="unknown-model"),
        pytest.param(
            base("--tp", "3", "--latency-model", "blackbox"),
            ("--model", MODEL, "TP=3", "available", "roofline"),
            id="untrained-tp3",
        ),
        pytest.param(base("--hardware", "Z80"), ("--model", "GPU=Z80", "available"), id="untrained-gpu"),
        pytest.param(
            base("--vllm-version", "v0.0.0", "--latency-model", "blackbox"),
            ("--model", "vLLM=v0.0.0", "available"),
            id="untrained-vllm",
        ),
        pytest.param(base(model=None), ("--model", "required"), id="missing-model"),
        pytest.param(base(model=""), ("--model", "required"), id="empty-model"),
    ],
)
def test_model_errors(blis, args, keywords):
    check(blis, args, *keywords)


# --- policies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, valid",
    [
        ("--admission-policy", "always-admit"),
        ("--routing-policy", "round-robin"),
        ("--priority-policy", "constant"),
        ("--scheduler", "fcfs"),
    ],
)
def test_unknown_policy_lists_valid_names(blis, flag, valid):
    line = check(blis, base(flag, "nosuch"), flag, "'nosuch'", valid)
    assert "unknown" in line


@pytest.mark.parametrize(
    "extra, keywords",
    [
        pytest.param(
            ["--routing-policy", "weighted", "--routing-scorers", "queue-depth"],
            ("--routing-scorers", "name:weight"),
            id="scorer-no-weight",
        ),
        pytest.param(
            ["--routing-policy", "weighted", "--routing-scorers", "nosuch:1"],
            ("--routing-scorers", "'nosuch'", "load-balance"),
            id="scorer-unknown",
        ),
        pytest.param(
            ["--routing-policy", "weighted", "--routing-scorers", "queue-depth:1,queue-depth:1"],
            ("--routing-scorers", "duplicate"),
            id="scorer-duplicate",
        ),
        pytest.param(
            ["--routing-policy", "weighted", "--routing-scorers", "queue-depth:-2"],
            ("--routing-scorers", "positive"),
            id="scorer-negative",
        ),
        pytest.param(
            ["--routing-policy", "weighted", "--routing-scorers", "queue-depth:nan"],
            ("--routing-scorers", "finite"),
            id="scorer-nan",
        ),
        pytest.param(["--fitness-weights", "throughput"], ("--fitness-weights", "throughput"), id="fitness-no-colon"),
        pytest.param(
            ["--fitness-weights", "latency:1"], ("--fitness-weights", "latency", "p99_ttft"), id="fitness-unknown-key"
        ),
        pytest.param(
            ["--fitness-weights", "throughput:-1"], ("--fitness-weights", "throughput"), id="fitness-negative"
        ),
        pytest.param(["--fitness-weights", "throughput:x"], ("--fitness-weights", "throughput"), id="fitness-nan"),
        pytest.param(
            ["--admission-policy", "token-bucket", "--token-bucket-capacity", "0"],
            ("--token-bucket-capacity", "0"),
            id="bucket-capacity-zero",
        ),
        pytest.param(
            ["--admission-policy", "token-bucket", "--token-bucket-refill-rate", "-5"],
            ("--token-bucket-refill-rate", "-5"),
            id="bucket-rate-negative",
        ),
        pytest.param(["--policy-config", "nosuch.yaml"], ("nosuch.yaml",), id="policy-config-missing"),
    ],
)
def test_policy_option_errors(blis, extra, keywords):
    check(blis, base(*extra), *keywords)


@pytest.mark.parametrize(
    "body, keywords",
    [
        pytest.param("routing: [1, 2\n", ("line",), id="yaml-syntax"),
        pytest.param(
            "routing:\n  policy: fastest\n", ("routing.policy", "fastest", "least-loaded"), id="unknown-policy"
        ),
        pytest.param("admision:\n  policy: reject-all\n", ("admision", "admission"), id="unknown-key"),
        pytest.param(
            "routing:\n  policy: weighted\n  scorers:\n    - name: queue-depth\n      weight: 0\n",
            ("routing.scorers", "queue-depth"),
            id="scorer-weight",
        ),
        pytest.param("admission:\n  token_bucket_capacity: -3\n", ("token_bucket_capacity",), id="negative-capacity"),
        pytest.param("- just\n- a list\n", ("mapping",), id="not-a-mapping"),
    ],
)
def test_policy_config_file_errors(blis, tmp_path, body, keywords):
    path = tmp_path / "policy.yaml"
    path.write_text(body)
    line = check(blis, base("--policy-config", str(path)), *keywords)
    assert "policy.yaml" in line


# --- roofline inputs and unknown values ----------------------------------------------------


@pytest.mark.parametrize(
    "extra, keywords",
    [
        pytest.param(
            ["--model-config-folder", "d", "--hardware-config", "h.json"],
            ("roofline", "--hardware", "--tp"),
            id="roofline-without-gpu-and-tp",
        ),
        pytest.param(
            ["--model-config-folder", "d"], ("--hardware-config", "hardware config file"), id="roofline-folder-only"
        ),
        pytest.param(
            ["--hardware-config", "h.json", "--hardware", "H100", "--tp", "1"],
            ("h.json", "file not found"),
            id="roofline-hw-missing",
        ),
        pytest.param(["--trace-level", "foo"], ("--trace-level", "'foo'", "none"), id="trace-level-unknown"),
    ],
)
def test_roofline_inputs_and_unknown_values(blis, extra, keywords):
    check(blis, base(*extra), *keywords)


# --- numeric and enum flag values -----------------------------------------------------------


@pytest.mark.parametrize(
    "extra, keywords",
    [
        pytest.param(["--rate", "-1"], ("--rate", "-1"), id="rate-negative"),
        pytest.param(["--rate", "0"], ("--rate",), id="rate-zero"),
        pytest.param(["--rate", "nan"], ("--rate", "nan"), id="rate-nan"),
        pytest.param(["--rate", "inf"], ("--rate", "inf"), id="rate-inf"),
        pytest.param(["--workload", "chatbot", "--rate", "-2"], ("--rate",), id="rate-negative-preset"),
        pytest.param(["--num-instances", "0"], ("--num-instances", "0"), id="num-instances-0"),
        pytest.param(["--total-kv-blocks", "0"], ("--total-kv-blocks", "0"), id="total-kv-blocks-0"),
        pytest.param(["--total-kv-blocks", "-3"], ("--total-kv-blocks", "-3"), id="total-kv-blocks-neg"),
        pytest.param(["--block-size-in-tokens", "0"], ("--block-size-in-tokens",), id="block-size-0"),
        pytest.param(["--max-num-running-reqs", "0"], ("--max-num-running-reqs",), id="max-running-0"),
        pytest.param(["--max-num-scheduled-tokens", "0"], ("--max-num-scheduled-tokens",), id="max-sched-0"),
        pytest.param(
            ["--long-prefill-token-threshold", "-1"], ("--long-prefill-token-threshold", "-1"), id="long-prefill-neg"
        ),
        pytest.param(["--admission-latency", "-1"], ("--admission-latency", "-1"), id="admission-latency-neg"),
        pytest.param(["--routing-latency", "-1"], ("--routing-latency", "-1"), id="routing-latency-neg"),
        pytest.param(
            ["--kv-transfer-base-latency", "-1"], ("--kv-transfer-base-latency", "-1"), id="kv-transfer-latency-neg"
        ),
        pytest.param(
            ["--snapshot-refresh-interval", "-1"], ("--snapshot-refresh-interval", "-1"), id="snapshot-refresh-neg"
        ),
        pytest.param(["--cache-signal-delay", "-1"], ("--cache-signal-delay", "-1"), id="cache-signal-delay-neg"),
        pytest.param(["--horizon", "-5"], ("--horizon", "-5"), id="horizon-neg"),
        pytest.param(["--tp", "-1"], ("--tp", "-1"), id="tp-neg"),
        pytest.param(["--counterfactual-k", "-1"], ("--counterfactual-k", "-1"), id="counterfactual-k-neg"),
        pytest.param(["--kv-cpu-blocks", "-1"], ("--kv-cpu-blocks", "-1"), id="kv-cpu-blocks-neg"),
        pytest.param(["--num-requests", "-1"], ("--num-requests", "-1"), id="num-requests-neg"),
        pytest.param(["--prefix-tokens", "-1"], ("--prefix-tokens", "-1"), id="prefix-tokens-neg"),
        pytest.param(["--prompt-tokens", "9000"], ("--prompt-tokens", "9000", "7000"), id="prompt-outside-range"),
        pytest.param(["--output-tokens-stdev", "9000"], ("--output-tokens-stdev", "9000"), id="output-stdev-outside"),
        pytest.param(
            ["--prompt-tokens-min", "10", "--prompt-tokens-max", "5"], ("--prompt-tokens-min",), id="prompt-min-gt-max"
        ),
        pytest.param(["--alpha-coeffs", "a,b,c"], ("--alpha-coeffs", "a,b,c"), id="alpha-not-numbers"),
        pytest.param(["--beta-coeffs", "1,2"], ("--beta-coeffs", "3", "2"), id="beta-too-few"),
        pytest.param(["--alpha-coeffs", "1,2,nan"], ("--alpha-coeffs",), id="alpha-nan"),
        pytest.param(["--log", "loud"], ("--log", "'loud'", "warn"), id="log-unknown"),
        pytest.param(["--workload", "nosuch"], ("--workload", "'nosuch'", "traces"), id="workload-unknown"),
        pytest.param(
            ["--workload", "traces"], ("--workload-traces-filepath", "--workload traces"), id="traces-without-file"
        ),
        pytest.param(["--kv-offload-threshold", "2"], ("--kv-offload-threshold", "2"), id="offload-threshold-2"),
        pytest.param(["--kv-offload-threshold", "-0.1"], ("--kv-offload-threshold",), id="offload-threshold-neg"),
        pytest.param(["--kv-offload-threshold", "nan"], ("--kv-offload-threshold",), id="offload-threshold-nan"),
        pytest.param(
            ["--kv-cpu-blocks", "10", "--kv-transfer-bandwidth", "0"],
            ("--kv-transfer-bandwidth", "0"),
            id="transfer-bandwidth-0",
        ),
        pytest.param(
            ["--kv-cpu-blocks", "10", "--kv-transfer-bandwidth", "inf"],
            ("--kv-transfer-bandwidth", "inf"),
            id="transfer-bandwidth-inf",
        ),
    ],
)
def test_bad_flag_values(blis, extra, keywords):
    check(blis, base(*extra), *keywords)


# --- click-level errors (parsing before our code runs) --------------------------------------


@pytest.mark.parametrize(
    "args, keywords",
    [
        pytest.param(base("--nope"), ("--nope",), id="unknown-flag"),
        pytest.param(base("--seed", "abc"), ("--seed",), id="seed-not-int"),
        pytest.param(base("--num-instances", "1.5"), ("--num-instances",), id="num-instances-float"),
        pytest.param(base("--rate", "fast"), ("--rate",), id="rate-not-number"),
        pytest.param(base("--rate"), ("--rate",), id="rate-missing-value"),
        pytest.param(base("--summarize-trace=yes"), ("--summarize-trace",), id="bool-flag-with-value"),
        pytest.param(base("extra-positional"), ("extra-positional",), id="unexpected-argument"),
        pytest.param(["nosuch"], ("nosuch",), id="unknown-command"),
    ],
)
def test_click_usage_errors(blis, args, keywords):
    check(blis, args, *keywords)


# --- CSV traces -----------------------------------------------------------------------------


def _trace_args(path: Path, *extra: str) -> list[str]:
    return base("--workload", "traces", "--workload-traces-filepath", str(path), *extra)


TRACE_CASES = [
    # id, file content (str or bytes), keywords besides the path
    ("empty-file", "", ("empty", "arrival_time")),
    ("wrong-columns-line3", f'{HEADER}\n{GOOD_ROW}\n0.5,req_1,llama,"[1]"\n', ("line 3", "columns", "got 4")),
    ("too-many-columns-line2", f"{HEADER}\n{GOOD_ROW},extra\n", ("line 2", "columns", "got 6")),
    ("arrival-not-number", f'{HEADER}\nsoon,req_0,llama,"[1]","[2]"\n', ("line 2", "arrival_time", "soon")),
    ("arrival-negative", f'{HEADER}\n{GOOD_ROW}\n-1.5,req_1,llama,"[1]","[2]"\n', ("line 3", "arrival_time")),
    ("arrival-inf", f'{HEADER}\ninf,req_0,llama,"[1]","[2]"\n', ("line 2", "arrival_time")),
    ("arrival-nan", f'{HEADER}\nnan,req_0,llama,"[1]","[2]"\n', ("line 2", "arrival_time")),
    ("prefill-not-json", f'{HEADER}\n0.0,req_0,llama,not-json,"[2]"\n', ("line 2", "prefill_tokens")),
    ("prefill-object", f'{HEADER}\n0.0,req_0,llama,"{{""a"": 1}}","[2]"\n', ("line 2", "prefill_tokens")),
    ("decode-float", f'{HEADER}\n0.0,req_0,llama,"[1]","[2, 3.5]"\n', ("line 2", "decode_tokens")),
    ("decode-string", f'{HEADER}\n0.0,req_0,llama,"[1]","[""x""]"\n', ("line 2", "decode_tokens")),
    ("decode-bool", f'{HEADER}\n0.0,req_0,llama,"[1]","[true]"\n', ("line 2", "decode_tokens")),
    # an unterminated quote swallows the rest of the file; the row then has too few columns
    ("unterminated-quote", f'{HEADER}\n{GOOD_ROW}\n0.1,req_1,llama,"[1,2,3],[4]\n', ("line 3",)),
    ("not-utf8", HEADER.encode() + b'\n0.0,req_0,\xff\xfe\xfa,"[1]","[2]"\n', ("UTF-8",)),
]


@pytest.mark.parametrize("content, keywords", [pytest.param(c, k, id=i) for i, c, k in TRACE_CASES])
def test_bad_trace_file(blis, tmp_path, content, keywords):
    path = tmp_path / "trace.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    check(blis, _trace_args(path), str(path), *keywords)


def test_trace_file_missing(blis, tmp_path):
    path = tmp_path / "absent.csv"
    check(blis, _trace_args(path), str(path), "not found")


def test_trace_path_is_directory(blis, tmp_path):
    check(blis, _trace_args(tmp_path), str(tmp_path), "directory")


# --- --defaults-filepath --------------------------------------------------------------------

DEFAULTS_CASES = [
    ("malformed-yaml", "models: [unclosed\ndefaults: {\n", ("invalid YAML", "line")),
    ("unknown-top-level-key", "bogus: 1\nmodels: []\n", ("unknown top-level key", "'bogus'", "models")),
    ("empty", "", ("empty",)),
    ("not-a-mapping", "- 1\n- 2\n", ("mapping",)),
    ("duplicate-key", "models: []\nmodels: []\n", ("duplicate key", "'models'")),
    (
        "bad-field-type",
        "models:\n  - id: m\n    GPU: H100\n    tensor_parallelism: two\n",
        ("models[0].tensor_parallelism", "integer"),
    ),
    ("unknown-field", "models:\n  - id: m\n    colour: red\n", ("models[0]", "'colour'")),
    ("our-schema-wrong", "schema: nope\nmodels: {}\n", ("schema must be",)),
    ("model-not-in-file", "models: []\n", ("--model", MODEL, "known models")),
]


@pytest.mark.parametrize("content, keywords", [pytest.param(c, k, id=i) for i, c, k in DEFAULTS_CASES])
def test_bad_defaults_file(blis, tmp_path, content, keywords):
    path = tmp_path / "defaults.yaml"
    path.write_text(content, encoding="utf-8")
    check(blis, base("--defaults-filepath", str(path)), str(path), *keywords)


def test_defaults_file_missing(blis, tmp_path):
    path = tmp_path / "absent.yaml"
    check(blis, base("--defaults-filepath", str(path)), str(path), "not found")


def test_defaults_file_is_directory(blis, tmp_path):
    check(blis, base("--defaults-filepath", str(tmp_path)), str(tmp_path), "directory")


# --- --results-path: exit 2 and never a (half-)written file ---------------------------------


def test_results_path_in_missing_directory(blis, tmp_path):
    target = tmp_path / "nodir" / "out.json"
    check(blis, base("--results-path", str(target)), "--results-path", str(target.parent))
    assert not target.exists()
    assert not target.parent.exists()


def test_results_path_under_a_regular_file(blis, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    target = blocker / "out.json"
    check(blis, base("--results-path", str(target)), "--results-path")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(
    "extra,keyword",
    [
        pytest.param(["--model", "nosuch/model"], "nosuch/model", id="unknown-model"),
        pytest.param(["--rate", "-1"], "--rate", id="negative-rate"),
        pytest.param(["--num-instances", "0"], "--num-instances", id="zero-instances"),
        pytest.param(["--beta-coeffs", "1,2"], "--beta-coeffs", id="too-few-coeffs"),
    ],
)
def test_failed_run_writes_no_results(blis, tmp_path, extra, keyword):
    target = tmp_path / "out.json"
    check(blis, base("--results-path", str(target), *extra), keyword)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "results or temp file left behind"


def test_bad_trace_after_parsing_writes_no_results(blis, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(f'{HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n0.2,req_2,llama,"[1]","[oops]"\n')
    target = tmp_path / "out.json"
    check(blis, _trace_args(trace, "--results-path", str(target)), str(trace), "line 4", "decode_tokens")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.csv"], "results or temp file left behind"


def test_failed_run_keeps_existing_results_file(blis, tmp_path):
    target = tmp_path / "out.json"
    target.write_text('{"old": true}\n')
    check(blis, base("--results-path", str(target), "--rate", "0"), "--rate")
    assert target.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_results_path_is_a_directory(blis, tmp_path):
    """A directory as the results path must be refused cleanly (ideally before simulating)."""
    target = tmp_path / "results_dir"
    target.mkdir()
    check(blis, base("--results-path", str(target), "--num-requests", "1"), "--results-path", str(target))
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results_dir"]


# --- real processes: nothing else catches a traceback for us --------------------------------


def _real(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "blis_gym", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("case", ["unknown-model", "malformed-csv", "unknown-flag"])
def test_subprocess_one_error_line(tmp_path, case):
    if case == "unknown-model":
        args, keywords = base(model="nosuch/model"), ("nosuch/model",)
    elif case == "malformed-csv":
        trace = tmp_path / "bad.csv"
        trace.write_text(f"{HEADER}\n{GOOD_ROW}\n1.0,req_1\n")
        args, keywords = _trace_args(trace), (str(trace), "line 3")
    else:
        args, keywords = base("--nope"), ("--nope",)
    proc = _real(args, cwd=ROOT)
    assert_one_error(proc.returncode, proc.stdout, proc.stderr, *keywords)


def test_ctrl_c_exits_130_with_one_line(blis, monkeypatch):
    from blis_gym.cli import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "execute", interrupted)
    code, out, err = blis("run", "--model", "meta-llama/llama-3.1-8b-instruct")
    assert (code, out, err.strip()) == (130, "", "error: interrupted")


def test_results_file_gets_the_usual_permissions(blis, tmp_path):
    import os
    import stat

    target = tmp_path / "out.json"
    code, _, err = blis(
        "run", "--model", "meta-llama/llama-3.1-8b-instruct", "--num-requests", "5", "--results-path", str(target)
    )
    assert code == 0, err
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
