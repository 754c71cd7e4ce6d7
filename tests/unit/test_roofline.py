"""Roofline step times: aggregates against the reference's request-by-request sums, the
mixture-of-experts extension, and how a run selects its step-time model.

Parity with BLIS itself is in test_differential.py (the ``rf_*`` cases)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from types import SimpleNamespace

import pytest
from testkit import DATA, metric_blocks
from testkit.sim import config, roofline_spec, simulator, workload

from blis_gym.config.catalog import load_catalog
from blis_gym.config.model_facts import shipped_model_names
from blis_gym.engine.request import Request
from blis_gym.engine.roofline import ModelArch, RooflineLatency, RooflineSpec

FIXTURES = DATA / "fixtures"
HW = FIXTURES / "blis_hardware_config.json"
DENSE = [m for m in shipped_model_names() if "moe" not in m and "mixtral" not in m]


def _random_batch(rng: random.Random) -> tuple[list[tuple[int, int]], list[int]]:
    prefills = [
        (rng.choice([0, rng.randrange(0, 30000)]), rng.choice([1, 2, rng.randrange(1, 4096)]))
        for _ in range(rng.randrange(0, 4))
    ]
    decodes = [rng.randrange(1, 60000) for _ in range(rng.randrange(0, 300))]
    return prefills, decodes


@pytest.mark.parametrize("model", DENSE)
@pytest.mark.parametrize("gpu", ["H100", "A100-SXM"])
def test_aggregates_equal_the_reference_order_bit_for_bit(model, gpu):
    """Per phase, the aggregate formula gives exactly the float the reference's per-request
    sums give (integers below 2**53 make every term exact), so step times agree too."""
    rng = random.Random(f"{model}/{gpu}")
    for tp in (1, 2, 4, 8):
        lat = RooflineLatency(roofline_spec(model, gpu, tp))
        assert lat.batch_view == "shape"
        for _ in range(150):
            prefills, decodes = _random_batch(rng)
            want = lat._step_in_order(prefills, decodes)
            assert lat.step_time_shape(prefills, len(decodes), sum(decodes)) == want
            if prefills:  # the phase floats themselves, not only their rounded sum
                n = sum(x for _, x in prefills)
                ns2 = sum(x * (2 * c + x - 1) for c, x in prefills)
                s = sum(c for c, _ in prefills)
                got = lat._phase(
                    2 * lat._g1 * n + lat._g2 * ns2,
                    2 * lat._s1 * n + lat._s2 * ns2,
                    lat._m1 * n + lat._m2 * s,
                    lat.spec.gpu.mfu_prefill,
                )
                assert got == lat._ordered_phase(prefills, lat.spec.gpu.mfu_prefill, float(tp))


def test_inexact_models_sum_request_by_request():
    """TP 3 or a head size that is not a whole number: terms are not exact floats, so the model
    asks to see every request (and the engine then steps without lazy decoding)."""
    assert RooflineLatency(roofline_spec(tp=3)).batch_view == "requests"
    odd = ModelArch(layers=4, hidden=2000, heads=24, kv_heads=24)
    spec = RooflineSpec(odd, load_catalog().gpus["H100"], 2)
    assert RooflineLatency(spec).batch_view == "requests"
    sim = simulator(config(roofline=spec), workload(n=5))
    assert not sim.instances[0].lazy_enabled
    with pytest.raises(ValueError, match="lazy decoding is unavailable"):
        sim.instances[0].lazy_enabled = True


def test_step_time_grows_with_work():
    lat = RooflineLatency(roofline_spec())
    base = lat.step_time_shape([], 8, 8 * 500)
    assert lat.step_time_shape([], 8, 8 * 5000) > base  # longer contexts: more KV to read
    assert lat.step_time_shape([], 64, 64 * 500) > base  # more decoders
    assert lat.step_time_shape([(0, 2048)], 8, 8 * 500) > lat.step_time_shape([(0, 128)], 8, 8 * 500)
    one = RooflineLatency(roofline_spec(tp=1)).step_time_shape([(0, 2048)], 0, 0)
    assert RooflineLatency(roofline_spec(tp=4)).step_time_shape([(0, 2048)], 0, 0) < one
    # An empty batch still pays the fixed and per-layer overheads.
    g = load_catalog().gpus["H100"]
    assert lat.step_time_shape([], 0, 0) == round(g.t_overhead_us + 32 * g.per_layer_overhead_us)


def test_step_time_of_a_batch_classifies_requests_as_the_reference():
    """A running batch: prefilling requests count their scheduled tokens, decoders one token at
    their context, and requests with nothing to do (no output) count for nothing."""
    lat = RooflineLatency(roofline_spec())
    prefill = Request("p", 0, 0, list(range(100)), [1, 2])
    prefill.progress, prefill.num_new = 40, 60
    decoder = Request("d", 1, 0, list(range(50)), [1, 2, 3])
    decoder.progress = 51
    idle = Request("i", 2, 0, list(range(10)), [])
    idle.progress = 10
    assert lat.step_time([prefill, decoder, idle]) == lat.step_time_shape([(40, 60)], 1, 51)


# --- mixture of experts (ours) -------------------------------------------------------------


def _moe(model="mixtral-8x7b-instruct-v0.1", tp=2, ep=1) -> RooflineLatency:
    return RooflineLatency(roofline_spec(model, "H100", tp, ep))


def test_shipped_moe_models_read_their_experts():
    mixtral = _moe().spec.arch
    assert (mixtral.experts, mixtral.experts_per_token, mixtral.expert_intermediate) == (8, 2, 14336)
    qwen = _moe("qwen1.5-moe-a2.7b-chat").spec.arch
    assert (qwen.experts, qwen.experts_per_token, qwen.expert_intermediate, qwen.shared_intermediate) == (
        60,
        4,
        1408,
        5632,
    )


def test_moe_costs_more_than_its_dense_twin_and_experts_saturate():
    """Mixtral has llama-3.1-8b's attention and MLP width, so one decoder costs about a dense
    step plus the other expert's weights; with many decoders all 8 experts are read and the
    step stops growing with them (the memory term saturates)."""
    moe, dense = _moe(), RooflineLatency(roofline_spec(tp=2))
    assert moe.step_time_shape([], 1, 100) > dense.step_time_shape([], 1, 100)
    steps = [moe.step_time_shape([], b, 100 * b) for b in (1, 2, 4, 8, 16)]
    assert steps == sorted(steps) and steps[0] < steps[-1]
    # Expert weights saturate: 48 more decoders past 16 add less than the first 15 did.
    many = moe.step_time_shape([], 64, 6400)
    assert many - steps[-1] < steps[-1] - steps[0]
    # The dense twin grows only by KV and activations, far less than the experts add.
    assert dense.step_time_shape([], 16, 1600) - dense.step_time_shape([], 1, 100) < steps[-1] - steps[0]


def test_expert_parallelism_divides_expert_work():
    assert _moe(ep=2).step_time_shape([], 32, 32 * 800) < _moe(ep=1).step_time_shape([], 32, 32 * 800)
    assert _moe(ep=2).step_time_shape([(0, 2048)], 0, 0) < _moe(ep=1).step_time_shape([(0, 2048)], 0, 0)


def test_moe_batch_and_shape_agree():
    lat = _moe("qwen1.5-moe-a2.7b-chat", tp=1)
    assert lat.batch_view == "shape"
    rng = random.Random(5)
    for _ in range(50):
        prefills, decodes = _random_batch(rng)
        batch = [SimpleNamespace(progress=ctx, n_in=ctx + new + 1, n_out=1, num_new=new) for ctx, new in prefills]
        batch += [SimpleNamespace(progress=ctx, n_in=ctx, n_out=2, num_new=1) for ctx in decodes]
        assert lat.step_time(batch) == lat.step_time_shape(prefills, len(decodes), sum(decodes))


def test_experts_per_token_must_fit():
    arch = replace(_moe().spec.arch, experts_per_token=9)
    with pytest.raises(Exception, match="num_experts_per_tok must be in"):
        RooflineSpec(arch, load_catalog().gpus["H100"], 2)


# --- selecting the model from blis run's flags --------------------------------------------

RUN = ("run", "--num-requests", "30", "--rate", "20", "--log", "error")


def test_shipped_facts_need_no_files(blis, tmp_path, monkeypatch):
    """Roofline for a model whose facts ship, from any directory, equals the run from BLIS's
    config folder and hardware file."""
    monkeypatch.chdir(tmp_path)
    code, shipped, err = blis(
        *RUN,
        "--model",
        "qwen/qwen2.5-7b-instruct",
        "--latency-model",
        "roofline",
        "--hardware",
        "A100-SXM",
        "--tp",
        "2",
    )
    assert code == 0, err
    code, files, err = blis(
        *RUN,
        "--model",
        "qwen/qwen2.5-7b-instruct",
        "--hardware",
        "A100-SXM",
        "--tp",
        "2",
        "--model-config-folder",
        str(FIXTURES / "model_configs/qwen2.5-7b-instruct"),
        "--hardware-config",
        str(HW),
    )
    assert code == 0, err
    assert metric_blocks(shipped) == metric_blocks(files)


def test_no_coefficients_falls_back_to_roofline(blis):
    code, out, err = blis(
        "run", "--model", "qwen/qwen3-14b", "--hardware", "A100-SXM", "--tp", "2", "--num-requests", "20"
    )
    assert code == 0, err
    assert "using the roofline model" in err
    code, _, err = blis(
        "run", "--model", "qwen/qwen3-14b", "--hardware", "A100-SXM", "--tp", "2", "--latency-model", "blackbox"
    )
    assert code == 2 and "no trained coefficients" in err


def test_coefficients_win_over_config_files(blis):
    """As in BLIS: coefficients given with a config folder and hardware file run blackbox."""
    code, with_files, err = blis(
        *RUN,
        "--model",
        "meta-llama/llama-3.1-8b-instruct",
        "--alpha-coeffs",
        "1,2,3",
        "--beta-coeffs",
        "5000,10,3",
        "--model-config-folder",
        "/no/such/folder",
        "--hardware-config",
        "/no/such/file.json",
    )
    assert code == 0, err
    code, plain, _ = blis(
        *RUN, "--model", "meta-llama/llama-3.1-8b-instruct", "--alpha-coeffs", "1,2,3", "--beta-coeffs", "5000,10,3"
    )
    assert metric_blocks(with_files) == metric_blocks(plain)


def _bad_config(tmp_path, **changes):
    raw = json.loads((FIXTURES / "model_configs/llama-3.1-8b-instruct/config.json").read_text())
    raw.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del raw[key]
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(raw))
    return str(folder)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("--model-config-folder", "FOLDER", "--hardware-config", "HW", "--hardware", "B200", "--tp", "1"),
            r"--hardware B200: GPU not found in .*blis_hardware_config.json \(available: A100-SXM, H100\)",
        ),
        (
            ("--model-config-folder", "FOLDER", "--hardware-config", "HW", "--hardware", "H100"),
            r"also needs --hardware \(got H100\) and --tp > 0 \(got 0\)",
        ),
        (
            ("--model", "acme/unknown-7b", "--hardware-config", "HW", "--hardware", "H100", "--tp", "1"),
            r"provide --model-config-folder, a folder containing config.json for model=acme/unknown-7b",
        ),
        (
            ("--model-config-folder", "/no/such/folder", "--hardware-config", "HW", "--hardware", "H100", "--tp", "1"),
            r"--model-config-folder /no/such/folder: no config.json there",
        ),
        (
            (
                "--model-config-folder",
                "FOLDER",
                "--hardware-config",
                "/no/such/hw.json",
                "--hardware",
                "H100",
                "--tp",
                "1",
            ),
            r"/no/such/hw.json: file not found",
        ),
        (("--latency-model", "roofline", "--alpha-coeffs", "1,2,3"), r"takes no --alpha-coeffs"),
        (
            ("--latency-model", "fast"),
            r"--latency-model: unknown model 'fast' \(valid: auto, blackbox, roofline, trained-physics\)",
        ),
        (("--ep", "0"), r"--ep must be >= 1, got 0"),
        (
            ("--latency-model", "roofline", "--hardware", "H100", "--tp", "1", "--model-config-folder", "BAD_DTYPE"),
            r"config.json: torch_dtype 'float8' is not one of",
        ),
        (
            ("--latency-model", "roofline", "--hardware", "H100", "--tp", "1", "--model-config-folder", "NO_LAYERS"),
            r"config.json: num_hidden_layers must be an integer",
        ),
    ],
)
def test_roofline_input_errors(blis, tmp_path, args, message):
    folder = str(FIXTURES / "model_configs/llama-3.1-8b-instruct")
    subs = {"FOLDER": folder, "HW": str(HW)}
    if "BAD_DTYPE" in args:
        subs["BAD_DTYPE"] = _bad_config(tmp_path, torch_dtype="float8")
    if "NO_LAYERS" in args:
        subs["NO_LAYERS"] = _bad_config(tmp_path, num_hidden_layers=None)
    argv = [subs.get(a, a) for a in args]
    if "--model" not in argv:
        argv = ["--model", "meta-llama/llama-3.1-8b-instruct", *argv]
    code, out, err = blis("run", *argv, "--num-requests", "5")
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and out == "", err
    assert __import__("re").search(message, lines[0]), lines[0]


def test_a_scenario_selects_roofline_with_its_own_hardware_file(tmp_path):
    """Scenario files take the roofline options like any blis run option; a relative hardware
    file is read from the scenario's folder."""
    from blis_gym.envs.scenario import load_scenario
    from blis_gym.plan import simulate

    (tmp_path / "gpus.json").write_text((FIXTURES / "custom_hardware.json").read_text())
    path = tmp_path / "mi300x.yaml"
    path.write_text(
        "model: qwen/qwen2.5-7b-instruct\nlatency_model: roofline\nhardware: MI300X\ntp: 2\n"
        "hardware_config: gpus.json\nnum_instances: 2\nnum_requests: 40\nrate: 20\n"
    )
    scenario = load_scenario(path)
    spec = scenario.plan.config.engine.roofline
    assert spec is not None and spec.name == "MI300X" and spec.gpu.tflops_peak == 1307.4
    assert sum(m.completed for m in simulate(scenario.plan).instances) == 40
