"""Trained-physics step times (``--latency-model trained-physics``): recorded upstream results,
how a model's config is read, bad inputs, and runs through ``blis run``.

``tests/data/trained_physics/cases.json`` holds step times and overheads of upstream BLIS's
trained-physics model (inference-sim/inference-sim at f90a1e3a), recorded by calling its Go code
on the batches stored there for every shipped model (plus synthetic configs and three of
upstream's bundled HF configs, for paths no shipped model takes), the GPUs upstream knows, TP
1/2/4/8, data parallelism for MoE models, and several coefficient sets; a run upstream refuses
carries its error instead. The ``-x1e6`` sets scale every beta by a million, so their
integer step times show the float result to about 15 significant digits.
"""

from __future__ import annotations

import json
from collections import defaultdict
from types import SimpleNamespace

import pytest
from testkit import DATA, FIXTURES, metric_blocks

from blis_gym.config.catalog import load_catalog
from blis_gym.config.model_facts import load_model_facts, shipped_model_names
from blis_gym.engine.latency import latency_model
from blis_gym.engine.trained_physics import (
    TrainedPhysicsArch,
    TrainedPhysicsLatency,
    TrainedPhysicsSpec,
    weight_bytes_from_name,
)
from blis_gym.errors import ConfigError
from blis_gym.plan.latency import choose_latency, trained_physics_defaults
from blis_gym.plan.options import RunOptions

CASES = json.loads((DATA / "trained_physics" / "cases.json").read_text("utf-8"))
BATCHES = [
    [SimpleNamespace(progress=p, n_in=n_in, num_new=new, n_out=n_out) for p, n_in, new, n_out in batch]
    for batch in CASES["batches"]
]
RUNS_BY_MODEL: dict[str, list] = defaultdict(list)
for _run in CASES["runs"]:
    RUNS_BY_MODEL[_run["model"]].append(_run)


def _arch(model: str) -> TrainedPhysicsArch:
    entry = CASES["models"][model]
    if "shipped" in entry:
        return TrainedPhysicsArch.from_hf(load_model_facts(model), entry["shipped"])
    return TrainedPhysicsArch.from_hf(entry["config"], entry["hf_id"])


def _spec(run: dict) -> TrainedPhysicsSpec:
    gpu = CASES["gpus"][run["gpu"]]
    coeffs = CASES["coefficients"][run["coefficients"]]
    return TrainedPhysicsSpec(
        _arch(run["model"]),
        gpu["tflops_peak"],
        gpu["bw_peak_tbs"],
        run["tp"],
        tuple(coeffs["alpha"]),
        tuple(coeffs["beta"]),
        tflops_fp8=gpu["tflops_fp8"],
        dp=run["dp"],
        moe_comm=run["moe_comm"],
        name=run["gpu"],
    )


# --- recorded upstream cases -------------------------------------------------------------------


def test_the_cases_cover_every_shipped_model_and_gpu():
    recorded = {m for m, e in CASES["models"].items() if "shipped" in e}
    assert recorded == set(shipped_model_names())
    assert set(CASES["gpus"]) == {"H100", "A100-SXM", "A100-80", "L40S"}
    gpus = load_catalog().gpus
    for name, figures in CASES["gpus"].items():  # recorded with our GPU figures
        assert (figures["tflops_peak"], figures["bw_peak_tbs"]) == (gpus[name].tflops_peak, gpus[name].bw_peak_tbs)
        assert figures["tflops_fp8"] == trained_physics_defaults().fp8_tflops.get(name, 0.0)
    assert {r["tp"] for r in CASES["runs"]} == {1, 2, 4, 8}
    assert sum(len(r.get("step_times", ())) for r in CASES["runs"]) > 10000


def test_shipped_coefficients_are_upstreams():
    shipped = trained_physics_defaults()
    assert list(shipped.alpha) == CASES["coefficients"]["shipped"]["alpha"]
    assert list(shipped.beta) == CASES["coefficients"]["shipped"]["beta"]


@pytest.mark.parametrize("model", sorted(RUNS_BY_MODEL))
def test_step_times_equal_upstreams(model):
    """Every recorded step time, exactly (relative error 0); every run upstream refused raises."""
    mismatches = []
    for run in RUNS_BY_MODEL[model]:
        label = f"{model} {run['gpu']} tp{run['tp']} dp{run['dp']} {run['moe_comm']} {run['coefficients']}"
        if "error" in run:
            with pytest.raises(ConfigError):
                _spec(run)
            continue
        lat = TrainedPhysicsLatency(_spec(run))
        for i, (batch, want) in enumerate(zip(BATCHES, run["step_times"])):
            got = lat.step_time(batch)
            if got != want:
                mismatches.append(f"{label} batch {i} ({CASES['batch_kinds'][i]}): {got} != {want}")
        overheads = (lat.queueing_time(100), lat.output_token_time(), lat.post_decode_time())
        assert overheads == (run["queueing"], run["output_token"], run["post_decode"]), label
    assert not mismatches, "\n".join(mismatches[:20])


def test_step_time_aggregates_equal_the_batch_pass():
    run = next(r for r in CASES["runs"] if r["model"] == "qwen3-14b" and r["coefficients"] == "random-x1e6")
    lat = TrainedPhysicsLatency(_spec(run))
    h = float(lat.spec.arch.heads) / lat.spec.tp
    dh = float(lat.spec.arch.hidden // lat.spec.arch.heads)
    for batch, want in zip(BATCHES[1:], run["step_times"][1:]):
        pf = [r for r in batch if r.progress < r.n_in]
        dc = [r for r in batch if r.progress >= r.n_in and r.n_out > 0]
        attn = 0.0
        for r in pf:
            attn += 4 * h * r.num_new * (r.n_in + r.num_new / 2) * dh
        tokens = float(sum(r.num_new for r in pf))
        ctx = float(sum(r.progress for r in dc))
        assert lat.step_time_aggregates(len(batch), tokens, attn, float(len(dc)), ctx) == want


# --- reading a model's config ------------------------------------------------------------------


def test_config_reading_follows_upstream():
    a = TrainedPhysicsArch.from_hf(CASES["models"]["synthetic-interleaved-moe"]["config"])
    assert (a.layers, a.experts, a.interleave_step, a.dense_intermediate) == (24, 16, 1, 16384)
    # routed experts: the first count >= 2 in upstream's order; shared experts from their count
    a = TrainedPhysicsArch.from_hf(CASES["models"]["synthetic-deepseek-like"]["config"])
    assert (a.experts, a.shared_intermediate, a.expert_intermediate) == (64, 2 * 1408, 1408)
    assert TrainedPhysicsArch.from_hf({"num_experts": 1, "num_local_experts": 8}).experts == 8
    assert TrainedPhysicsArch.from_hf({"num_attention_heads": 8}).kv_heads == 8
    assert TrainedPhysicsArch.from_hf({"num_kv_heads": 2, "num_attention_heads": 8}).kv_heads == 2
    assert TrainedPhysicsArch.from_hf({"torch_dtype": "float8"}).bytes_per_param == 0
    assert TrainedPhysicsArch.from_hf({"torch_dtype": None, "dtype": "bfloat16"}).bytes_per_param == 2


@pytest.mark.parametrize(
    "quant, want",
    [
        ({"quant_method": "fp8"}, 1.0),
        ({"quant_method": "gptq", "bits": 4}, 0.5),
        ({"quant_method": "awq", "bits": "8"}, 1.0),
        ({"quant_method": "compressed-tensors", "config_groups": {"b": {"weights": {"num_bits": 8}}}}, 1.0),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"z": {"weights": {"num_bits": 8}}, "a": {"weights": {"num_bits": 4}}},
            },
            0.5,
        ),
        ({"quant_method": "bitsandbytes"}, 0.0),
    ],
)
def test_weight_precision_from_quantization_config(quant, want):
    assert TrainedPhysicsArch.from_hf({"quantization_config": quant}).weight_bytes == want


@pytest.mark.parametrize(
    "name, want",
    [
        ("redhatai/llama-3.3-70b-instruct-quantized.w4a16", 0.5),
        ("RedHatAI/Llama-3.3-70B-Instruct-quantized.W8A8", 1.0),
        ("meta-llama/llama-4-maverick-17b-128e-instruct-fp8", 1.0),
        ("redhatai/llama-4-scout-17b-16e-instruct-FP8-dynamic", 1.0),
        ("meta-llama/llama-3.1-8b-instruct", 0.0),
        ("acme/fp8model", 0.0),
    ],
)
def test_weight_precision_from_the_model_name(name, want):
    assert weight_bytes_from_name(name) == want


# --- bad inputs --------------------------------------------------------------------------------

RUN = ("run", "--log", "error", "--num-requests", "20", "--rate", "10", "--latency-model", "trained-physics")
MODEL = ("--model", "meta-llama/llama-3.1-8b-instruct")


def _one_error(blis, *args: str) -> str:
    code, out, err = blis(*args)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: "), (code, out, err)
    return lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (("--alpha-coeffs", "1,2"), ("--alpha-coeffs", "3 values", "got 2")),
        (("--alpha-coeffs", "1,2,3,4"), ("--alpha-coeffs", "3 values", "got 4")),
        (("--beta-coeffs", "1,2,3"), ("--beta-coeffs", "7 to 11 values", "got 3")),
        (("--beta-coeffs", ",".join(["1"] * 12)), ("--beta-coeffs", "7 to 11 values", "got 12")),
        (("--beta-coeffs", "1,1,1,1,1,-1,1"), ("--beta-coeffs[5]", ">= 0")),
        (("--hardware", "Z80"), ("--hardware Z80", "GPU not found", "H100")),
        (("--tp", "3"), ("num_attention_heads (32)", "divisible by --tp (3)")),
    ],
)
def test_bad_inputs_are_one_error_line(blis, args, words):
    line = _one_error(blis, *RUN, *MODEL, *args)
    for word in words:
        assert word in line, line


def test_a_model_without_defaults_or_facts(blis):
    line = _one_error(blis, *RUN, "--model", "acme/unknown-7b", "--hardware", "H100")
    assert "trained-physics needs --tp > 0" in line
    line = _one_error(blis, *RUN, "--model", "acme/unknown-7b", "--hardware", "H100", "--tp", "1")
    assert "trained-physics" in line and "--model-config-folder" in line


def test_unknown_gpu_and_comm_backend_in_the_spec():
    arch = TrainedPhysicsArch.from_hf(load_model_facts("qwen3-14b"))
    shipped = trained_physics_defaults()
    with pytest.raises(ConfigError, match="peak TFLOP/s must be a finite number > 0"):
        TrainedPhysicsSpec(arch, 0.0, 3.35, 1, shipped.alpha, shipped.beta, name="H100")
    with pytest.raises(ConfigError, match="unknown MoE comm backend 'nccl'"):
        TrainedPhysicsSpec(arch, 989.5, 3.35, 1, shipped.alpha, shipped.beta, moe_comm="nccl")
    with pytest.raises(ConfigError, match="needs a mixture-of-experts model"):
        TrainedPhysicsSpec(arch, 989.5, 3.35, 1, shipped.alpha, shipped.beta, dp=2)


# --- choosing it, and runs -----------------------------------------------------------------------


def _choice(**kw):
    return choose_latency(RunOptions(**kw), load_catalog)


def test_auto_never_picks_trained_physics():
    for kw in (
        {"model": "meta-llama/llama-3.1-8b-instruct"},
        {"model": "qwen/qwen3-14b", "hardware": "A100-SXM", "tp": 2},  # roofline fallback
    ):
        assert not isinstance(_choice(**kw).roofline, TrainedPhysicsSpec)
    c = _choice(model="qwen/qwen3-14b", hardware="H100", tp=2, latency_model="trained-physics")
    assert isinstance(c.roofline, TrainedPhysicsSpec)
    assert (c.alpha, c.beta) == (trained_physics_defaults().alpha, trained_physics_defaults().beta)
    assert isinstance(latency_model(c.alpha, c.beta, c.roofline), TrainedPhysicsLatency)


def test_coefficient_flags_replace_their_half():
    shipped = trained_physics_defaults()
    beta = (1.0, 0.0, 1.0, 1.0, 10.0, 2.0, 100.0, 0.0)
    c = _choice(
        model="qwen/qwen3-14b",
        hardware="H100",
        tp=1,
        latency_model="trained-physics",
        beta_coeffs=beta,
        explicit=frozenset({"beta_coeffs"}),
    )
    assert (c.roofline.alpha, c.roofline.beta) == (shipped.alpha, beta)
    c = _choice(
        model="qwen/qwen3-14b",
        hardware="H100",
        tp=1,
        latency_model="trained-physics",
        alpha_coeffs=(0.0, 0.0, 0.0),
        explicit=frozenset({"alpha_coeffs"}),
    )
    assert (c.roofline.alpha, c.roofline.beta) == ((0.0, 0.0, 0.0), shipped.beta)


def _means(stdout: str) -> tuple[float, float, float, int]:
    m = metric_blocks(stdout)[-1]
    return m["ttft_mean_ms"], m["itl_mean_ms"], m["e2e_mean_ms"], m["completed_requests"]


def test_blis_run_trained_physics(blis):
    """A run completes; the post-decode overhead (alpha1) adds to each E2E exactly once and
    leaves TTFT and ITL alone; the queueing delay (alpha0) adds to TTFT and E2E."""
    code, out, err = blis(*RUN, *MODEL, "--hardware", "H100", "--tp", "1", "--alpha-coeffs", "0,0,0")
    assert code == 0, err
    ttft, itl, e2e, done = _means(out)
    assert done == 20 and 0 < ttft < e2e
    code, out, err = blis(*RUN, *MODEL, "--hardware", "H100", "--tp", "1", "--alpha-coeffs", "0,1000,0")
    assert code == 0, err
    ttft2, itl2, e2e2, _ = _means(out)
    assert (ttft2, itl2) == (ttft, itl) and e2e2 == pytest.approx(e2e + 1.0, abs=1e-9)
    code, out, err = blis(*RUN, *MODEL, "--hardware", "H100", "--tp", "1", "--alpha-coeffs", "2000,0,0")
    assert code == 0, err
    ttft3, itl3, e2e3, _ = _means(out)
    assert itl3 == itl and ttft3 == pytest.approx(ttft + 2.0, abs=1e-9) and e2e3 == pytest.approx(e2e + 2.0, abs=1e-9)


def test_config_folder_and_upstream_hardware_file(blis, tmp_path):
    """A HuggingFace config folder and a hardware file in upstream's newer layout (FP8 peaks,
    memory) give the same run as the shipped facts and GPU specs."""
    hw = tmp_path / "hw.json"
    hw.write_text(
        json.dumps(
            {
                "H100": {
                    "_comment": "upstream layout",
                    "TFlopsPeak": 989.5,
                    "TFlopsFP8": 1979.0,
                    "BwPeakTBs": 3.35,
                    "mfuPrefill": 0.45,
                    "mfuDecode": 0.3,
                    "MemoryGiB": 80.0,
                }
            }
        )
    )
    common = (*RUN, *MODEL, "--hardware", "H100", "--tp", "2")
    code, shipped, err = blis(*common)
    assert code == 0, err
    folder = str(FIXTURES / "model_configs/llama-3.1-8b-instruct")
    code, files, err = blis(*common, "--model-config-folder", folder, "--hardware-config", str(hw))
    assert code == 0, err
    assert metric_blocks(files) == metric_blocks(shipped)


def test_a_pool_runs_trained_physics_per_class(blis):
    code, out, err = blis(
        "run",
        "--log",
        "error",
        *MODEL,
        "--num-requests",
        "40",
        "--rate",
        "20",
        "--latency-model",
        "trained-physics",
        "--instance-pool",
        "H100:1,L40S:1",
    )
    assert code == 0, err
    assert _means(out)[3] == 40
