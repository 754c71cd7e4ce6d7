"""Unit tests of workload specs (``blis run --workload-spec FILE``).

Parity with BLIS is covered by ``test_spec_differential.py``; this file checks
the pieces on their own terms:

* the samplers against the laws they claim (large N, fixed seeds, so every
  run draws the same numbers and the tolerances only have to hold once);
* strict yaml.v3-style decoding and validation: one ``error:`` line naming the
  file and the key path, exit code 2, no results file;
* the places where we deliberately do better than BLIS;
* how a spec's seed, horizon and num_requests interact with the CLI flags.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli_errors import assert_one_error
from testkit import DATA

from blis_gym.config.schema import MAX_INT64
from blis_gym.errors import BlisError
from blis_gym.gorand import GoRand, IntnStream, subsystem_seed
from blis_gym.workload.samplers import LENGTH_LAWS, arrival_sampler, weibull_cv, weibull_shape_from_cv
from blis_gym.workload.spec import ArrivalSpec
from blis_gym.workload.spec_generator import generate_spec_requests
from blis_gym.workload.spec_loader import load_workload_spec, shipped_specs

MODEL = "meta-llama/llama-3.1-8b-instruct"
UNIT = DATA / "specs" / "unit"
N = 200_000  # draws per sampler law
TOKENS = 128000


# --- helpers ---------------------------------------------------------------------------------


def stream(seed: int) -> IntnStream:
    """A client-style random stream (what the generator draws from)."""
    return IntnStream(GoRand(seed), TOKENS)


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, name: str = "spec.yaml"):
    return load_workload_spec(str(write(tmp_path, text, name)))


def generate(spec, horizon: int = MAX_INT64, cap: int | None = None):
    return generate_spec_requests(spec, horizon, spec.num_requests if cap is None else cap)


def signature(requests) -> list[tuple]:
    """Everything that identifies a generated request."""
    return [
        (
            r.id,
            r.arrival,
            tuple(np.asarray(r.input).tolist()),
            tuple(np.asarray(r.output).tolist()),
            r.slo_class,
            r.tenant_id,
            r.client_id,
            r.session_id,
        )
        for r in requests
    ]


def run(blis, *args: str):
    return blis("run", "--model", MODEL, *args)


def run_ok(blis, tmp_path: Path, spec: Path | str, *args: str, name: str = "results.json") -> dict:
    """Run quietly with a results file; return the parsed file."""
    results = tmp_path / name
    code, _, err = run(blis, "--log", "error", "--workload-spec", str(spec), "--results-path", str(results), *args)
    assert code == 0, err
    return json.loads(results.read_text())


def rows(results: dict) -> list[tuple]:
    return sorted(
        (r["arrived_at"], r["num_prefill_tokens"], r["num_decode_tokens"], r.get("client_id"))
        for r in results["requests"]
    )


def cv_of(values) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std() / a.mean())


# --- samplers against their laws -------------------------------------------------------------

RATE_PER_US = 10 / 1e6  # 10 requests/s: mean gap 100 000 ticks, so truncation to ticks is negligible
MEAN_GAP = 1 / RATE_PER_US


@pytest.mark.parametrize(
    "process, cv, seed, cv_tol",
    [
        pytest.param("poisson", None, 101, 0.03, id="poisson"),
        pytest.param("gamma", 0.5, 102, 0.02, id="gamma-cv0.5"),
        pytest.param("gamma", 2.5, 103, 0.04, id="gamma-cv2.5"),
        pytest.param("weibull", 0.5, 104, 0.02, id="weibull-cv0.5"),
        pytest.param("weibull", 2.0, 105, 0.05, id="weibull-cv2.0"),
    ],
)
def test_arrival_law_mean_and_cv(process, cv, seed, cv_tol):
    sampler = arrival_sampler(ArrivalSpec(process, cv), RATE_PER_US)
    rng = stream(seed)
    gaps = [sampler.iat(rng) for _ in range(N)]
    assert all(isinstance(g, int) and g >= 1 for g in gaps)
    mean, got_cv = cv_of(gaps)
    assert mean == pytest.approx(MEAN_GAP, rel=0.025)
    assert got_cv == pytest.approx(cv if cv is not None else 1.0, rel=cv_tol)


def test_gamma_with_tiny_shape_falls_back_to_poisson():
    """CV 12 means shape 1/144 < 0.01: documented fallback to poisson arrivals (CV 1)."""
    sampler = arrival_sampler(ArrivalSpec("gamma", 12.0), RATE_PER_US)
    rng = stream(106)
    mean, got_cv = cv_of([sampler.iat(rng) for _ in range(50_000)])
    assert mean == pytest.approx(MEAN_GAP, rel=0.03)
    assert got_cv == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("cv", [0.02, 0.1, 0.5, 1.0, 2.0, 5.0, 10.4])
def test_weibull_shape_from_cv_round_trip(cv):
    assert abs(weibull_cv(weibull_shape_from_cv(cv)) - cv) < 0.001


def test_weibull_cv_known_values():
    assert weibull_cv(1.0) == pytest.approx(1.0, abs=1e-12)  # the exponential law
    assert weibull_cv(2.0) == pytest.approx(math.sqrt(4 / math.pi - 1), rel=1e-12)  # Rayleigh


def length_sampler(name: str, **params: float):
    return LENGTH_LAWS[name]({k: float(v) for k, v in params.items()})


def draws(sampler, seed: int, n: int = N) -> np.ndarray:
    rng = stream(seed)
    return np.array([sampler.sample(rng) for _ in range(n)], dtype=np.int64)


def test_gaussian_mean_and_std_with_wide_bounds():
    x = draws(length_sampler("gaussian", mean=1000, std_dev=100, min=1, max=100_000), 201)
    assert x.mean() == pytest.approx(1000, abs=1.5)
    assert x.std() == pytest.approx(100, rel=0.015)


def test_gaussian_clamp_respected():
    x = draws(length_sampler("gaussian", mean=100, std_dev=50, min=80, max=120), 202, 50_000)
    assert x.min() == 80 and x.max() == 120
    # P(draw rounds to 80) = P(Z < (80.5 - 100) / 50) = 0.3483, the same at 120 by symmetry
    assert (x == 80).mean() == pytest.approx(0.3483, abs=0.01)
    assert (x == 120).mean() == pytest.approx(0.3483, abs=0.01)


def test_gaussian_min_equal_max_draws_nothing():
    sampler = length_sampler("gaussian", mean=50, std_dev=10, min=7, max=7)
    rng = stream(203)
    assert [sampler.sample(rng) for _ in range(100)] == [7] * 100
    fresh = stream(203)
    assert [rng.float64() for _ in range(5)] == [fresh.float64() for _ in range(5)], "stream moved"


def test_gaussian_never_below_one():
    x = draws(length_sampler("gaussian", mean=0, std_dev=5, min=-50, max=50), 204, 20_000)
    assert x.min() == 1


def test_exponential_mean():
    x = draws(length_sampler("exponential", mean=500), 205)
    assert x.mean() == pytest.approx(500, rel=0.015)
    assert x.min() >= 1


def test_pareto_lognormal_mixture():
    """Pareto part >= xm = 1e5, lognormal part (median e^mu = 100) far below it, so they separate."""
    alpha, xm, mu, mix = 2.0, 100_000.0, math.log(100.0), 0.3
    x = draws(length_sampler("pareto_lognormal", alpha=alpha, xm=xm, mu=mu, sigma=0.5, mix_weight=mix), 206)
    pareto, lognormal = x[x >= xm], x[x < xm]
    assert len(pareto) / len(x) == pytest.approx(mix, abs=0.006)
    assert lognormal.max() < 10_000
    assert np.median(lognormal) == pytest.approx(math.exp(mu), abs=2)
    assert (pareto > 2 * xm).mean() == pytest.approx(2**-alpha, abs=0.01)  # Pareto tail P(X > 2 xm)


def test_pareto_lognormal_all_pareto_or_all_lognormal():
    only_pareto = draws(length_sampler("pareto_lognormal", alpha=3, xm=50, mu=1, sigma=1, mix_weight=1), 207, 5000)
    assert only_pareto.min() >= 50
    only_lognormal = draws(length_sampler("pareto_lognormal", alpha=3, xm=1e9, mu=3, sigma=0, mix_weight=0), 208, 1000)
    assert set(only_lognormal.tolist()) == {round(math.exp(3))}


def test_empirical_frequencies_match_normalized_pdf():
    pdf = {"10": 2.0, "20": 0.0, "30": 6.0, "40": 2.0}  # sums to 10, not 1
    x = draws(length_sampler("empirical", **pdf), 209)
    values, counts = np.unique(x, return_counts=True)
    freq = dict(zip(values.tolist(), (counts / len(x)).tolist()))
    assert set(freq) == {10, 30, 40}, "the zero-probability bin must never be drawn"
    assert freq[10] == pytest.approx(0.2, abs=0.005)
    assert freq[30] == pytest.approx(0.6, abs=0.005)
    assert freq[40] == pytest.approx(0.2, abs=0.005)


def test_empirical_single_bin_and_constant_draw_nothing():
    for sampler, value in (
        (length_sampler("empirical", **{"64": 0.0, "77": 3.0}), 77),
        (length_sampler("constant", value=123), 123),
    ):
        rng = stream(210)
        assert [sampler.sample(rng) for _ in range(50)] == [value] * 50
        assert rng.float64() == stream(210).float64(), "stream moved"


def test_constant_below_one_is_one():
    assert length_sampler("constant", value=0).sample(stream(1)) == 1


# --- generation: determinism -----------------------------------------------------------------

MIXED = """\
version: "1"
seed: 5150
aggregate_rate: 60
num_requests: 150
clients:
  - id: chat
    tenant_id: acme
    slo_class: interactive
    rate_fraction: 2
    prefix_group: sys
    prefix_length: 24
    arrival: {process: gamma, cv: 1.8}
    input_distribution: {type: gaussian, params: {mean: 60, std_dev: 20, min: 5, max: 200}}
    output_distribution: {type: exponential, params: {mean: 20}}
  - id: docs
    tenant_id: lawfirm
    slo_class: batch
    rate_fraction: 1
    arrival: {process: weibull, cv: 0.7}
    input_distribution: {type: pareto_lognormal, params: {alpha: 2, xm: 100, mu: 5, sigma: 0.6, mix_weight: 0.2}}
    output_distribution: {type: empirical, params: {8: 0.5, 16: 0.5}}
  - id: rt
    slo_class: realtime
    rate_fraction: 0.5
    arrival: {process: poisson}
    input_distribution: {type: constant, params: {value: 12}}
    output_distribution: {type: constant, params: {value: 4}}
"""


def test_same_spec_and_seed_give_identical_requests(tmp_path):
    spec = load_text(tmp_path, MIXED)
    first, second = generate(spec), generate(spec)
    assert len(first) == 150
    assert signature(first) == signature(second)
    again = load_text(tmp_path, MIXED, name="copy.yaml")  # a fresh load of the same text
    assert signature(generate(again)) == signature(first)
    other = load_text(tmp_path, MIXED.replace("seed: 5150", "seed: 5151"), name="other.yaml")
    assert signature(generate(other)) != signature(first)


def test_requests_are_sorted_named_and_carry_client_fields(tmp_path):
    reqs = generate(load_text(tmp_path, MIXED))
    assert [r.id for r in reqs] == [f"request_{i}" for i in range(len(reqs))]
    assert [r.arrival for r in reqs] == sorted(r.arrival for r in reqs)
    owners = {r.client_id: (r.tenant_id, r.slo_class) for r in reqs}
    assert owners == {"chat": ("acme", "interactive"), "docs": ("lawfirm", "batch"), "rt": ("", "realtime")}


def test_cap_keeps_the_earliest_requests(tmp_path):
    """For single-turn clients the first n requests do not depend on the cap (BLIS's 2n per client)."""
    spec = load_text(tmp_path, MIXED)
    horizon = 3_000_000
    uncapped = generate(spec, horizon, cap=0)
    assert len(uncapped) > 150
    for n in (1, 17, 150):
        capped = generate(spec, horizon, cap=n)
        assert [s[1:] for s in signature(capped)] == [s[1:] for s in signature(uncapped[:n])]


def test_horizon_bounds_arrivals(tmp_path):
    spec = load_text(tmp_path, MIXED)
    reqs = generate(spec, 1_000_000, cap=0)
    assert reqs and max(r.arrival for r in reqs) < 1_000_000
    assert generate(spec, 0, cap=0) == []


def test_prefix_group_tokens_come_from_the_workload_gen_stream(tmp_path):
    spec = load_text(tmp_path, MIXED)
    master = IntnStream(GoRand(subsystem_seed(spec.seed, "workload-gen")), TOKENS)
    prefix = master.take(24).tolist()
    chat = [r for r in generate(spec) if r.client_id == "chat"]
    assert chat and all(r.input[:24].tolist() == prefix for r in chat)


# --- decoding and validation errors: one line, exit 2, no results file ------------------------

BASE = """\
version: "1"
seed: 3
aggregate_rate: 20
num_requests: 10
clients:
  - id: a
    rate_fraction: 1
    arrival: {process: poisson}
    input_distribution: {type: constant, params: {value: 10}}
    output_distribution: {type: constant, params: {value: 5}}
  - id: b
    rate_fraction: 1
    arrival: {process: gamma, cv: 2}
    input_distribution: {type: exponential, params: {mean: 10}}
    output_distribution: {type: gaussian, params: {mean: 5, std_dev: 1, min: 1, max: 10}}
"""
B_ARRIVAL = "arrival: {process: gamma, cv: 2}"
B_INPUT = "input_distribution: {type: exponential, params: {mean: 10}}"
B_ID = "  - id: b\n"


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def b_key(line: str) -> str:
    """BASE with one more key on client b."""
    return edit(B_ID, f"{B_ID}    {line}\n")


def b_input(dist: str) -> str:
    return edit(B_INPUT, f"input_distribution: {dist}")


BAD_SPECS = [
    ("unknown-top-level-key", BASE + "bogus: 1\n", ("bogus", "unknown key", "line 16")),
    (
        "unknown-nested-key",
        edit(B_ARRIVAL, "arrival: {process: gamma, cvv: 2}"),
        ("clients[1].arrival.cvv", "unknown key"),
    ),
    ("unknown-client-key", b_key("colour: red"), ("clients[1].colour", "unknown key")),
    ("duplicate-key", edit("seed: 3\n", "seed: 3\nseed: 4\n"), ("seed", "twice")),
    (
        "duplicate-param",
        b_input("{type: exponential, params: {mean: 10, mean: 11}}"),
        ("clients[1].input_distribution.params.mean", "twice"),
    ),
    (
        "rate-fraction-string",
        edit("rate_fraction: 1\n    arrival: {process: gamma", "rate_fraction: lots\n    arrival: {process: gamma"),
        ("clients[1].rate_fraction", "'lots'"),
    ),
    ("list-for-scalar", edit("aggregate_rate: 20", "aggregate_rate: [20]"), ("aggregate_rate", "list")),
    ("fractional-int", b_key("prefix_length: 12.5"), ("clients[1].prefix_length", "integer", "12.5")),
    ("quoted-int", edit("seed: 3", "seed: '3'"), ("seed", "integer")),
    (
        "unknown-arrival-process",
        edit(B_ARRIVAL, "arrival: {process: hawkes}"),
        ("clients[1].arrival.process", "'hawkes'", "poisson"),
    ),
    (
        "unknown-dist-type",
        b_input("{type: zipf, params: {s: 1}}"),
        ("clients[1].input_distribution.type", "'zipf'", "empirical"),
    ),
    (
        "gaussian-missing-param",
        edit("{mean: 5, std_dev: 1, min: 1, max: 10}", "{mean: 5, min: 1, max: 10}"),
        ("clients[1].output_distribution.params", "std_dev"),
    ),
    (
        "unknown-param",
        b_input("{type: exponential, params: {mean: 10, sd: 3}}"),
        ("clients[1].input_distribution.params.sd",),
    ),
    (
        "weibull-cv-high",
        edit(B_ARRIVAL, "arrival: {process: weibull, cv: 10.5}"),
        ("clients[1].arrival.cv", "10.4", "10.5"),
    ),
    (
        "weibull-cv-low",
        edit(B_ARRIVAL, "arrival: {process: weibull, cv: 0.005}"),
        ("clients[1].arrival.cv", "0.01", "0.005"),
    ),
    ("negative-prefix-length", b_key("prefix_length: -1"), ("clients[1].prefix_length", "-1")),
    ("aggregate-rate-zero", edit("aggregate_rate: 20", "aggregate_rate: 0"), ("aggregate_rate",)),
    ("unknown-category", BASE + "category: chatty\n", ("category", "'chatty'")),
    ("unknown-slo-class", b_key("slo_class: urgent"), ("clients[1].slo_class", "'urgent'", "realtime")),
    (
        "window-empty-interval",
        b_key("lifecycle: {windows: [{start_us: 5, end_us: 5}]}"),
        ("clients[1].lifecycle.windows[0]",),
    ),
    (
        "window-start-after-end",
        b_key("lifecycle: {windows: [{start_us: 0, end_us: 9}, {start_us: 9, end_us: 3}]}"),
        ("clients[1].lifecycle.windows[1]",),
    ),
    ("windows-none", b_key("lifecycle: {windows: []}"), ("clients[1].lifecycle.windows",)),
    (
        "max-rounds-zero",
        b_key("reasoning: {multi_turn: {max_rounds: 0}}"),
        ("clients[1].reasoning.multi_turn.max_rounds",),
    ),
    (
        "unknown-context-growth",
        b_key("reasoning: {multi_turn: {max_rounds: 2, context_growth: grow}}"),
        ("clients[1].reasoning.multi_turn.context_growth", "'grow'"),
    ),
    (
        "multimodal-and-multi-turn",
        b_key(
            "multimodal: {text_distribution: {type: constant, params: {value: 3}}}\n"
            "    reasoning: {multi_turn: {max_rounds: 2}}"
        ),
        ("clients[1]", "multimodal", "multi_turn"),
    ),
    (
        "image-without-count",
        b_key("multimodal: {image_distribution: {type: constant, params: {value: 3}}}"),
        ("clients[1].multimodal.image_distribution", "image_count_distribution"),
    ),
    (
        "empirical-word-key",
        b_input("{type: empirical, params: {ten: 1}}"),
        ("clients[1].input_distribution.params.ten", "integer"),
    ),
    (
        "empirical-fractional-key",
        b_input("{type: empirical, params: {10.5: 1}}"),
        ("clients[1].input_distribution.params.10.5", "integer"),
    ),
    (
        "empirical-all-zero",
        b_input("{type: empirical, params: {10: 0, 20: 0}}"),
        ("clients[1].input_distribution.params", "> 0"),
    ),
    (
        "empirical-file-and-params",
        b_input("{type: empirical, file: pdf.yaml, params: {10: 1}}"),
        ("clients[1].input_distribution", "file"),
    ),
    (
        "empirical-file-missing",
        b_input("{type: empirical, file: nosuch-pdf.yaml}"),
        ("clients[1].input_distribution.file", "nosuch-pdf.yaml"),
    ),
    ("empirical-nothing", b_input("{type: empirical}"), ("clients[1].input_distribution", "empirical")),
    ("malformed-yaml", "version: '1'\nclients: [\n", ("invalid YAML", "line")),
    ("not-a-mapping", "- 1\n- 2\n", ("mapping",)),
    ("no-clients", 'version: "1"\naggregate_rate: 5\nnum_requests: 5\n', ("clients",)),
    (
        "inference-perf-no-stages",
        'version: "1"\nnum_requests: 5\ninference_perf:\n  stages: []\n  shared_prefix: '
        "{num_unique_system_prompts: 1, num_users_per_system_prompt: 1, question_len: 5, output_len: 5}\n",
        ("inference_perf.stages",),
    ),
    (
        "servegen-path-missing",
        'version: "1"\naggregate_rate: 5\nnum_requests: 5\nservegen_data: {path: nowhere}\n',
        ("servegen_data.path", "nowhere"),
    ),
    ("needs-a-bound", edit("num_requests: 10\n", ""), ("bound", "num_requests", "horizon")),
]


@pytest.mark.parametrize("text, keywords", [pytest.param(t, k, id=i) for i, t, k in BAD_SPECS])
def test_bad_spec_one_error_line(blis, tmp_path, text, keywords):
    path = write(tmp_path, text)
    results = tmp_path / "out.json"
    code, out, err = run(blis, "--log", "error", "--workload-spec", str(path), "--results-path", str(results))
    assert_one_error(code, out, err, f"--workload-spec {path}", *keywords)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"], "results or temp file left behind"


def test_bad_spec_error_path_is_the_key_path_for_the_failing_client(tmp_path):
    """The index in the key path is the failing client's, not the first one's."""
    text = (
        BASE + "  - id: c\n    rate_fraction: 1\n    arrival: {process: poisson}\n"
        "    input_distribution: {type: constant, params: {value: 1}}\n"
        "    output_distribution: {type: constant, params: {valu: 1}}\n"
    )
    with pytest.raises(BlisError, match=re.escape("clients[2].output_distribution.params.valu")):
        load_text(tmp_path, text)


def test_missing_spec_file(blis, tmp_path):
    path = tmp_path / "absent.yaml"
    code, out, err = run(
        blis, "--log", "error", "--workload-spec", str(path), "--results-path", str(tmp_path / "out.json")
    )
    assert_one_error(code, out, err, str(path), "no such file")
    assert list(tmp_path.iterdir()) == []


def test_spec_path_is_a_directory(blis, tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    code, out, err = run(
        blis, "--log", "error", "--workload-spec", str(folder), "--results-path", str(tmp_path / "out.json")
    )
    assert_one_error(code, out, err, str(folder), "directory")
    assert [p.name for p in tmp_path.iterdir()] == ["specs"]


def test_negative_num_requests_with_a_spec(blis, tmp_path):
    path = write(tmp_path, BASE)
    code, out, err = run(
        blis,
        "--log",
        "error",
        "--workload-spec",
        str(path),
        "--num-requests",
        "-1",
        "--results-path",
        str(tmp_path / "out.json"),
    )
    assert_one_error(code, out, err, "--num-requests", "-1")
    assert [p.name for p in tmp_path.iterdir()] == ["spec.yaml"]


# --- yaml.v3 decoding rules (where PyYAML's YAML 1.1 would differ) -------------------------------

YAML_V3 = """\
version: 1
seed: 0x1F
aggregate_rate: 1_000
num_requests: 50
clients:
  - id: seven
    tenant_id: 7
    streaming: yes
    prefix_group: octal
    prefix_length: 010
    rate_fraction: 1
    arrival: {process: poisson}
    input_distribution: {type: exponential, params: {mean: 1e3}}
    output_distribution: {type: constant, params: {value: 3}}
  - id: other
    tenant_id: 7.50
    streaming: off
    prefix_group: underscored
    prefix_length: 1_000
    rate_fraction: .5
    slo_class: ~
    arrival: {process: poisson}
    input_distribution: {type: constant, params: {value: 2}}
    output_distribution: {type: constant, params: {value: 1e0}}
"""


def test_yaml_v3_scalar_rules(tmp_path):
    spec = load_text(tmp_path, YAML_V3)
    first, second = spec.clients
    assert spec.version == "1" and spec.seed == 31 and spec.aggregate_rate == 1000.0
    assert first.tenant_id == "7" and second.tenant_id == "7.50"  # a string field takes the text
    assert first.streaming is True and second.streaming is False  # yaml.v3 keeps YAML 1.1 booleans for bools
    assert first.prefix_length == 8  # 010 is octal
    assert second.prefix_length == 1000  # underscores are dropped
    assert first.input_distribution.params["mean"] == 1000.0 and type(first.input_distribution.params["mean"]) is float
    assert second.rate_fraction == 0.5 and second.slo_class == ""
    reqs = generate(spec)
    seven = [r for r in reqs if r.client_id == "seven"]
    other = [r for r in reqs if r.client_id == "other"]
    assert seven and other
    assert all(r.tenant_id == "7" for r in seven)
    assert {r.n_in for r in other} == {1002}  # 1000-token prefix + 2
    assert all(r.n_in >= 9 for r in seven)  # 8-token prefix + at least 1


def test_yes_is_a_string_in_a_string_field(tmp_path):
    spec = load_text(tmp_path, edit("  - id: b\n", "  - id: yes\n    tenant_id: off\n"))
    assert spec.clients[1].id == "yes" and spec.clients[1].tenant_id == "off"


# --- where we deliberately do better than BLIS --------------------------------------------------

IP_ONLY = """\
version: "1"
seed: 91
num_requests: 40
inference_perf:
  stages:
    - {rate: 20, duration: 10}
  shared_prefix:
    num_unique_system_prompts: 2
    num_users_per_system_prompt: 3
    system_prompt_len: {prompt_len}
    question_len: 37
    output_len: 9
"""


def test_spec_with_only_inference_perf_runs(blis, tmp_path):
    """BLIS validates before expanding and rejects this spec; we expand it and run it."""
    path = write(tmp_path, IP_ONLY.replace("{prompt_len}", "64"))
    results = run_ok(blis, tmp_path, path)
    assert results["injected_requests"] == 40
    got = results["requests"]
    assert len(got) == 40
    assert {r["tenant_id"] for r in got} <= {"prompt-0", "prompt-1"}
    assert {r["num_prefill_tokens"] for r in got} == {64 + 37}
    assert {r["num_decode_tokens"] for r in got} == {9}


def test_inference_perf_system_prompt_len_zero_means_no_prefix(tmp_path):
    none = generate(load_text(tmp_path, IP_ONLY.replace("{prompt_len}", "0"), "none.yaml"))
    some = generate(load_text(tmp_path, IP_ONLY.replace("{prompt_len}", "16"), "some.yaml"))
    assert len(none) == len(some) == 40
    assert {r.n_in for r in none} == {37}  # BLIS would prepend its 50-token default prefix
    assert {r.n_in for r in some} == {16 + 37}
    # users of one system prompt share its first 16 tokens; the two prompts differ
    by_group: dict[str, set] = {}
    for r in some:
        by_group.setdefault(r.tenant_id, set()).add(tuple(r.input[:16].tolist()))
    assert sorted(len(v) for v in by_group.values()) == [1, 1] and len(set().union(*by_group.values())) == 2


WINDOWED = """\
version: "1"
seed: 404
aggregate_rate: 20
num_requests: 1000
clients:
  - id: windowed
    rate_fraction: 1
    arrival: {process: poisson}
    input_distribution: {type: constant, params: {value: 8}}
    output_distribution: {type: constant, params: {value: 2}}
    lifecycle:
      windows:
        - {start_us: 2000000, end_us: 2500000}
        - {start_us: 0, end_us: 1000000}
"""
WINDOWS = ((0, 1_000_000), (2_000_000, 2_500_000))


def in_window(t: int, windows=WINDOWS) -> bool:
    return any(start <= t < end for start, end in windows)


@pytest.mark.timeout(30)
def test_windows_without_horizon_terminate(tmp_path):
    """No horizon and a cap the windows cannot reach: BLIS draws for ever; we stop after the last window."""
    spec = load_text(tmp_path, WINDOWED)
    assert spec.horizon == 0
    reqs = generate(spec, MAX_INT64, 1000)
    assert 10 < len(reqs) < 1000  # about 20/s x 1.5 s of windows
    assert all(in_window(r.arrival) for r in reqs)
    assert max(r.arrival for r in reqs) < 2_500_000
    assert any(r.arrival >= 2_000_000 for r in reqs), "the later window (listed first) was skipped"


@pytest.mark.timeout(60)
def test_windows_without_horizon_run_from_the_cli(blis, tmp_path):
    results = run_ok(blis, tmp_path, write(tmp_path, WINDOWED))
    expected = generate(load_workload_spec(str(tmp_path / "spec.yaml")), MAX_INT64, 1000)
    assert results["injected_requests"] == len(expected)
    assert all(in_window(round(r["arrived_at"] * 1e6)) for r in results["requests"])


MULTI_TURN = """\
version: "1"
seed: 8080
aggregate_rate: 30
num_requests: 600
clients:
  - id: chat
    tenant_id: t-chat
    rate_fraction: 2
    prefix_group: sys
    prefix_length: 30
    arrival: {process: poisson}
    input_distribution: {type: gaussian, params: {mean: 12, std_dev: 4, min: 2, max: 30}}
    output_distribution: {type: constant, params: {value: 3}}
    lifecycle:
      windows:
        - {start_us: 1000000, end_us: 2000000}
        - {start_us: 4000000, end_us: 4500000}
    reasoning:
      reason_ratio_distribution: {type: constant, params: {value: 40}}
      multi_turn: {max_rounds: 3, think_time_us: 700000, context_growth: {growth}}
  - id: single
    tenant_id: t-single
    rate_fraction: 1
    prefix_group: sys
    arrival: {process: poisson}
    input_distribution: {type: constant, params: {value: 5}}
    output_distribution: {type: constant, params: {value: 3}}
"""


@pytest.mark.parametrize("growth", ["accumulate", "fixed"])
def test_multi_turn_rounds_keep_the_group_prefix(tmp_path, growth):
    reqs = generate(load_text(tmp_path, MULTI_TURN.replace("{growth}", growth)))
    chat = [r for r in reqs if r.client_id == "chat"]
    single = [r for r in reqs if r.client_id == "single"]
    assert chat and single
    prefix = single[0].input[:30].tolist()
    assert all(r.input[:30].tolist() == prefix for r in single)
    sessions: dict[str, list] = {}
    for r in chat:
        assert r.input[:30].tolist() == prefix, f"{r.id} ({r.session_id}) lacks the group's system prompt"
        sessions.setdefault(r.session_id, []).append(r)
    assert len(sessions) > 5 and all(s != "" for s in sessions)
    complete = [s for s in sessions.values() if len(s) == 3]
    assert complete
    for rounds in complete:
        rounds.sort(key=lambda r: r.arrival)
        if growth == "accumulate":  # prefix, then all earlier turns, then the new question
            for earlier, later in zip(rounds, rounds[1:]):
                body = np.concatenate((earlier.input[30:], earlier.output)).tolist()
                assert later.input[30 : 30 + len(body)].tolist() == body
        else:
            assert all(2 <= r.n_in - 30 <= 30 for r in rounds)  # no earlier turns carried


def test_multi_turn_sessions_start_only_inside_windows(tmp_path):
    reqs = generate(load_text(tmp_path, MULTI_TURN.replace("{growth}", "fixed")), MAX_INT64, 600)
    starts: dict[str, int] = {}
    for r in reqs:
        if r.client_id == "chat":
            starts[r.session_id] = min(starts.get(r.session_id, MAX_INT64), r.arrival)
    windows = ((1_000_000, 2_000_000), (4_000_000, 4_500_000))
    outside = [t for t in starts.values() if not in_window(t, windows)]
    assert not outside, f"sessions started outside the windows at {outside[:5]}"
    assert any(t < 2_000_000 for t in starts.values()) and any(t >= 4_000_000 for t in starts.values())


def test_empirical_file_equals_inline_pdf(tmp_path, monkeypatch):
    """``file:`` is read relative to the spec file (the current directory here has no such file)."""
    monkeypatch.chdir(tmp_path)
    from_file = load_workload_spec(str(UNIT / "empirical-file.yaml"))
    inline = load_workload_spec(str(UNIT / "empirical-inline.yaml"))
    a, b = generate(from_file), generate(inline)
    assert len(a) == 300
    assert signature(a) == signature(b)
    assert {r.n_in for r in a} == {100, 200, 450}  # the 300 bin has probability 0


def test_empirical_file_path_is_relative_to_the_spec_from_the_cli(blis, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = run_ok(blis, tmp_path, UNIT / "empirical-file.yaml", "--num-requests", "30")
    assert {r["num_prefill_tokens"] for r in results["requests"]} <= {100, 200, 450}
    assert results["injected_requests"] == 30


def test_servegen_windows_in_numeric_order(tmp_path, monkeypatch):
    """Span from 300 s: in numeric order window 600 comes first (BLIS's string order picks "1200")."""
    monkeypatch.chdir(tmp_path)  # the folder is found next to the spec
    spec = load_workload_spec(str(UNIT / "servegen-order.yaml"))
    (client,) = spec.clients
    assert client.input_distribution.params == {"66": 1.0}
    assert client.output_distribution.params == {"6": 1.0}
    reqs = generate(spec)
    assert len(reqs) == 30
    assert {(r.n_in, r.n_out) for r in reqs} == {(66, 6)}


# --- CLI interplay: seed, num_requests, horizon, rate ------------------------------------------

SMALL = """\
version: "1"
seed: 11
aggregate_rate: 50
num_requests: 40
clients:
  - id: web
    tenant_id: shop
    slo_class: interactive
    rate_fraction: 3
    arrival: {process: gamma, cv: 1.5}
    input_distribution: {type: gaussian, params: {mean: 80, std_dev: 30, min: 4, max: 300}}
    output_distribution: {type: exponential, params: {mean: 6}}
  - id: cron
    tenant_id: 7
    slo_class: batch
    rate_fraction: 1
    arrival: {process: poisson}
    input_distribution: {type: exponential, params: {mean: 120}}
    output_distribution: {type: constant, params: {value: 4}}
"""


def test_spec_seed_used_and_seed_flag_overrides(blis, tmp_path):
    path = write(tmp_path, SMALL)
    plain = run_ok(blis, tmp_path, path, name="plain.json")
    same = run_ok(blis, tmp_path, path, "--seed", "11", name="same.json")
    default = run_ok(blis, tmp_path, path, "--seed", "42", name="default.json")  # the flag's default value
    assert rows(plain) == rows(same)
    assert rows(plain) != rows(default), "without --seed the spec's seed (11) must be used"
    spec = load_workload_spec(str(path))
    assert sorted(r.n_in for r in generate(spec)) == sorted(r[1] for r in rows(plain))


def test_num_requests_flag_overrides_spec(blis, tmp_path):
    path = write(tmp_path, SMALL)
    results = run_ok(blis, tmp_path, path, "--num-requests", "7")
    assert results["injected_requests"] == 7 and len(results["requests"]) == 7
    full = run_ok(blis, tmp_path, path, name="full.json")
    assert full["injected_requests"] == 40
    assert rows(results) == rows(full)[:7]


HORIZON = """\
version: "1"
seed: 13
aggregate_rate: 40
horizon: 2000000
clients:
  - id: chat
    tenant_id: t1
    slo_class: interactive
    rate_fraction: 1
    arrival: {process: poisson}
    input_distribution: {type: constant, params: {value: 32}}
    output_distribution: {type: constant, params: {value: 4}}
    reasoning:
      multi_turn: {max_rounds: 3, think_time_us: 500000}
"""


def test_spec_horizon_is_the_simulation_horizon(blis, tmp_path):
    """Later rounds of sessions that start before the horizon arrive after it: they are not simulated."""
    path = write(tmp_path, HORIZON)
    spec = load_workload_spec(str(path))
    generated = generate(spec, spec.horizon, 0)
    before = [r for r in generated if r.arrival < 2_000_000]
    assert len(before) < len(generated), "the case needs rounds arriving after the horizon"
    results = run_ok(blis, tmp_path, path)
    assert results["injected_requests"] == len(before)
    assert max(r["arrived_at"] for r in results["requests"]) < 2.0
    assert results["vllm_estimated_duration_s"] <= 2.0


def test_horizon_flag_overrides_spec_horizon(blis, tmp_path):
    path = write(tmp_path, HORIZON)
    spec = load_workload_spec(str(path))
    longer = [r for r in generate(spec, 3_000_000, 0) if r.arrival < 3_000_000]
    results = run_ok(blis, tmp_path, path, "--horizon", "3000000")
    assert results["injected_requests"] == len(longer)
    assert max(r["arrived_at"] for r in results["requests"]) >= 2.0


def test_rate_flag_warns_and_changes_nothing(blis, tmp_path):
    path = write(tmp_path, SMALL)
    without = tmp_path / "without.json"
    code, _, err = run(blis, "--workload-spec", str(path), "--results-path", str(without))
    assert code == 0, err
    assert "--rate" not in err
    with_rate = tmp_path / "with.json"
    code, _, err = run(blis, "--workload-spec", str(path), "--rate", "999", "--results-path", str(with_rate))
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "--rate" in line]
    assert len(warnings) == 1 and "no effect" in warnings[0], err
    assert json.loads(with_rate.read_text()) == json.loads(without.read_text())


def test_results_rows_carry_slo_tenant_and_client(blis, tmp_path):
    results = run_ok(blis, tmp_path, write(tmp_path, SMALL))
    got = results["requests"]
    assert len(got) == 40
    seen = set()
    for row in got:
        assert {"slo_class", "tenant_id", "client_id"} <= set(row), row
        seen.add((row["client_id"], row["tenant_id"], row["slo_class"]))
    assert seen == {("web", "shop", "interactive"), ("cron", "7", "batch")}


def test_shipped_specs_load_and_generate():
    names = shipped_specs()
    for name in names:
        spec = load_workload_spec(name)
        assert spec.clients, name
        horizon = spec.horizon if spec.horizon > 0 else MAX_INT64
        cap = min(spec.num_requests, 100) if spec.num_requests else 100
        reqs = generate(spec, horizon, cap)
        assert len(reqs) > 0, name
        assert all(r.n_in >= 1 and r.n_out >= 1 for r in reqs), name


# --- requests that no law should produce -----------------------------------------------------

ZERO_TOKENS = """\
version: "1"
seed: 11
aggregate_rate: 10
num_requests: 5
clients:
  - id: empty
    rate_fraction: 1
    arrival: {process: poisson}
    input_distribution: {type: empirical, params: {"0": 1}}
    output_distribution: {type: empirical, params: {"0": 1}}
"""


def test_requests_with_no_tokens_at_all_are_dropped(tmp_path):
    """Empirical bins of 0 tokens are allowed (as in BLIS), so a request can have neither input
    nor output. BLIS crashes on one; ours drops it at its instance with a warning, and the run
    ends. (A real process with a time limit, so that a hang fails instead of stalling the suite.)"""
    path = write(tmp_path, ZERO_TOKENS)
    args = [
        sys.executable,
        "-m",
        "blis_gym",
        "run",
        "--model",
        MODEL,
        "--hardware",
        "H100",
        "--tp",
        "2",
        "--vllm-version",
        "vllm/vllm-openai:v0.8.4",
        "--workload-spec",
        str(path),
    ]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("blis run did not finish within 20 s on 5 requests of 0 input and 0 output tokens")
    assert proc.returncode == 0, proc.stderr
    assert "Dropped Unservable: 5" in proc.stdout
    assert proc.stderr.count("no input and no output tokens") == 5


def test_zero_token_bins_are_drawn_and_negative_ones_refused(tmp_path):
    """A 0-token bin is drawn as it is (BLIS does the same); a negative one is refused at load."""
    text = edit("{type: constant, params: {value: 10}}", '{type: empirical, params: {"0": 1}}')
    reqs = [r for r in generate(load_text(tmp_path, text)) if r.client_id == "a"]
    assert reqs and {r.n_in for r in reqs} == {0}
    text = edit("{type: constant, params: {value: 10}}", '{type: empirical, params: {"-5": 1}}')
    with pytest.raises(BlisError, match=r"clients\[0\]\.input_distribution\.params\.-5: .*>= 0"):
        load_text(tmp_path, text)
