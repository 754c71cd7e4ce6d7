"""``blis convert`` and ``blis compose``: workloads written as specs or trace v2 folders that run
as their sources do."""

from __future__ import annotations

import pytest
import yaml
from test_cli_errors import assert_one_error, invoke
from test_replay import replay_args
from testkit import ROOT

from blis_gym.workload.spec_loader import load_workload_spec

MODEL = "meta-llama/llama-3.1-8b-instruct"
RUN = ["run", "--log", "error", "--model", MODEL]
DATA = ROOT / "tests" / "data"


def _run(blis, *args):
    code, out, err = blis(*RUN, *args)
    assert code == 0, err
    return out


def test_a_converted_inference_perf_spec_runs_as_its_source(blis, tmp_path):
    source = DATA / "specs" / "ip-stages-pure.yaml"
    code, text, err = blis("convert", "inference-perf", "--spec", str(source))
    assert code == 0, err
    (tmp_path / "s.yaml").write_text(text)
    assert "inference_perf" not in yaml.safe_load(text)
    assert _run(blis, "--workload-spec", str(tmp_path / "s.yaml")) == _run(blis, "--workload-spec", str(source))


def test_converted_servegen_data_runs_as_the_folder(blis, tmp_path):
    folder = DATA / "servegen" / "sg-mixed"
    out = tmp_path / "sg.yaml"
    code, _, err = blis("convert", "servegen", "--path", str(folder), "--out", str(out))
    assert code == 0, err
    spec = load_workload_spec(str(out))
    source = tmp_path / "source.yaml"
    source.write_text(
        f"version: '1'\nseed: 42\naggregate_rate: {spec.aggregate_rate!r}\nnum_requests: 1000\n"
        f"servegen_data: {{path: {folder}}}\n"
    )
    args = ["--num-requests", "150"]
    assert _run(blis, "--workload-spec", str(out), *args) == _run(blis, "--workload-spec", str(source), *args)


def test_a_preset_becomes_one_constant_rate_client(blis, tmp_path):
    code, text, err = blis("convert", "preset", "--name", "chatbot", "--rate", "8", "--num-requests", "40")
    assert code == 0, err
    (tmp_path / "p.yaml").write_text(text)
    spec = load_workload_spec(str(tmp_path / "p.yaml"))
    (client,) = spec.clients
    assert client.arrival.process == "constant" and spec.aggregate_rate == 8.0 and spec.num_requests == 40
    out = _run(blis, "--workload-spec", str(tmp_path / "p.yaml"))
    assert '"completed_requests": 40' in out
    # constant arrivals 1/8 s apart (a spec client's first request comes one gap in, as BLIS's do)
    from blis_gym.plan import RunOptions, generate_requests

    reqs = generate_requests(RunOptions(model=MODEL, workload_spec=str(tmp_path / "p.yaml")))
    assert [r.arrival for r in reqs] == [(i + 1) * 125_000 for i in range(40)]


def test_compose_keeps_every_client_with_its_specs_share_of_the_rate(blis, tmp_path):
    code, text, err = blis("compose", "--from", "mixed-slo", "--from", "bursty-traffic")
    assert code == 0, err
    (tmp_path / "c.yaml").write_text(text)
    merged = load_workload_spec(str(tmp_path / "c.yaml"))
    a, b = load_workload_spec("mixed-slo"), load_workload_spec("bursty-traffic")
    assert merged.aggregate_rate == a.aggregate_rate + b.aggregate_rate
    assert [c.id for c in merged.clients] == [c.id for c in (*a.clients, *b.clients)]
    share = {c.id: c.rate_fraction / sum(x.rate_fraction for x in merged.clients) for c in merged.clients}
    rate_a = sum(share[c.id] for c in a.clients) * merged.aggregate_rate
    assert rate_a == pytest.approx(a.aggregate_rate)
    assert '"completed_requests"' in _run(blis, "--workload-spec", str(tmp_path / "c.yaml"), "--num-requests", "50")


def test_a_converted_trace_replays_as_the_trace_runs(blis, tmp_path):
    source = DATA / "traces" / "public" / "azure_2023.csv"
    code, _, err = blis("convert", "trace", "--input", str(source), "--out", str(tmp_path / "t"))
    assert code == 0, err
    code, replayed, err = blis(*replay_args(tmp_path / "t", run=["--log", "error", "--model", MODEL]))
    assert code == 0, err
    assert replayed == _run(blis, "--workload", "traces", "--workload-traces-filepath", str(source))


@pytest.mark.parametrize(
    "args, words",
    [
        (["convert", "preset", "--name", "nope"], ["--name", "chatbot"]),
        (["convert", "preset", "--name", "chatbot", "--rate", "-1"], ["--rate", "> 0"]),
        (["convert", "servegen", "--path", "/nonexistent"], ["--path", "no such folder"]),
        (["compose", "--from", "mixed-slo", "--from", "mixed-slo"], ["client id", "rename"]),
        (["compose", "--from", "no-such-spec"], ["no-such-spec"]),
    ],
)
def test_bad_convert_input_gets_one_error_line(blis, args, words):
    assert_one_error(*invoke(blis, args), *words)
