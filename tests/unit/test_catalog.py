"""The shipped catalog carries BLIS's reference figures exactly, and bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from testkit import FIXTURES, REFERENCE_DATA, ROOT, requires_reference

from blis_gym.config.catalog import (
    Catalog,
    CoefficientEntry,
    ModelDefaults,
    WorkloadPreset,
    load_catalog,
    load_hardware_config,
    read_blis_defaults,
)
from blis_gym.config.model_facts import load_model_facts, model_facts_from_hf
from blis_gym.engine.roofline import GPUSpec
from blis_gym.errors import ConfigError

# BLIS's own files: CI places a copy of shared/ beside the clone; tests that read them are
# marked @requires_reference and skip in a bare clone. The fixtures in tests/data/fixtures are
# small hand-written files in the same formats, so the readers stay covered without ../shared.
REFERENCE = REFERENCE_DATA
REPO = ROOT
BLIS_DEFAULTS_FIXTURE = FIXTURES / "blis_defaults.yaml"
HARDWARE_FIXTURE = FIXTURES / "blis_hardware_config.json"
HF_CONFIG_FIXTURE = FIXTURES / "hf_config_llama-3.1-8b-instruct.json"

PRESET_KEYS = {  # BLIS key -> ours
    "prefix_tokens": "prefix_tokens",
    "prompt_tokens": "prompt_mean",
    "prompt_tokens_stdev": "prompt_stdev",
    "prompt_tokens_min": "prompt_min",
    "prompt_tokens_max": "prompt_max",
    "output_tokens": "output_mean",
    "output_tokens_stdev": "output_stdev",
    "output_tokens_min": "output_min",
    "output_tokens_max": "output_max",
}
GPU_KEYS = {
    "TFlopsPeak": "tflops_peak",
    "BwPeakTBs": "bw_peak_tbs",
    "BwEffConstant": "bw_eff_constant",
    "TOverheadMicros": "t_overhead_us",
    "perLayerOverhead": "per_layer_overhead_us",
    "mfuPrefill": "mfu_prefill",
    "mfuDecode": "mfu_decode",
    "allReduceLatency": "all_reduce_latency_us",
}


@pytest.fixture(scope="module")
def reference() -> dict:
    path = REFERENCE / "defaults.yaml"
    assert path.is_file(), f"reference data missing: expected {path} (a copy of shared/ beside the repo)"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@requires_reference
def test_all_coefficient_rows_carried_exactly(reference: dict, catalog: Catalog) -> None:
    rows = reference["models"]
    assert len(rows) == len(catalog.coefficients) == 109
    expected = [
        CoefficientEntry(
            model=r["id"],
            gpu=r["GPU"],
            tp=r["tensor_parallelism"],
            vllm_version=r["vllm_version"],
            alpha=tuple(r["alpha_coeffs"]),
            beta=tuple(r["beta_coeffs"]),
            total_kv_blocks=r["total_kv_blocks"],
            best_loss=r["best_loss"],
        )
        for r in rows
    ]
    # Rows are grouped by model (first appearance), file order kept within a model; float
    # equality is exact, so the shipped figures must be bit-for-bit the reference's.
    models = list(dict.fromkeys(e.model for e in expected))
    grouped = [e for m in models for e in expected if e.model == m]
    assert list(catalog.coefficients) == grouped


@requires_reference
def test_first_match_wins_like_blis(reference: dict, catalog: Catalog) -> None:
    for r in reference["models"]:
        key = (r["id"], r["tensor_parallelism"], r["GPU"], r["vllm_version"])
        first = next(
            x for x in reference["models"] if (x["id"], x["tensor_parallelism"], x["GPU"], x["vllm_version"]) == key
        )
        found = catalog.find_coefficients(*key)
        assert found is not None
        assert found.alpha == tuple(first["alpha_coeffs"])
        assert found.total_kv_blocks == first["total_kv_blocks"]


@requires_reference
def test_defaults_and_presets_equal(reference: dict, catalog: Catalog) -> None:
    assert dict(catalog.model_defaults) == {
        model: ModelDefaults(d["GPU"], d["tensor_parallelism"], d["vllm_version"])
        for model, d in reference["defaults"].items()
    }
    assert list(catalog.workloads) == ["chatbot", "contentgen", "summarization", "multidoc"]
    for name, preset in reference["workloads"].items():
        want = {ours: preset.get(blis, 0) for blis, ours in PRESET_KEYS.items()}
        assert catalog.preset(name) == WorkloadPreset(**want)
    assert catalog.preset("multidoc").prefix_tokens == 0  # absent in BLIS: Go's zero value
    assert catalog.preset("nope") is None


@requires_reference
def test_gpu_specs_equal(catalog: Catalog) -> None:
    """BLIS's GPUs are shipped with its figures (we ship a few more, for roofline only)."""
    hardware = json.loads((REFERENCE / "hardware_config.json").read_text(encoding="utf-8"))
    assert {name: catalog.gpus[name] for name in hardware} == {
        name: GPUSpec(**{GPU_KEYS[k]: float(v) for k, v in spec.items()}) for name, spec in hardware.items()
    }


def test_default_model_resolves(catalog: Catalog) -> None:
    model = "meta-llama/llama-3.1-8b-instruct"
    d = catalog.defaults_for(model)
    assert d == ModelDefaults(gpu="H100", tp=2, vllm_version="vllm/vllm-openai:v0.8.4")
    entry = catalog.find_coefficients(model, d.tp, d.gpu, d.vllm_version)
    assert entry is not None
    assert entry.total_kv_blocks == 132139
    assert entry.alpha == (1601.350510688092, 3.512476196805965, 1805.5430360826988)
    assert entry.beta == (6910.420479880494, 17.67057489844186, 2.8377471109943855)
    assert catalog.defaults_for("no/such-model") is None
    assert catalog.find_coefficients(model, 3, "H100", d.vllm_version) is None


@requires_reference
def test_blis_file_loads_to_the_shipped_catalog(catalog: Catalog) -> None:
    from_blis = load_catalog(str(REFERENCE / "defaults.yaml"))
    assert from_blis == catalog
    assert from_blis.source.endswith("defaults.yaml")
    assert catalog.source.endswith("coefficients.yaml")


def test_our_schema_file_loads(catalog: Catalog, tmp_path: Path) -> None:
    assert load_catalog(str(REPO / "configs" / "coefficients.yaml")) == catalog
    # Alone in a folder, our coefficients file borrows the shipped defaults, presets and GPUs.
    lone = tmp_path / "coeffs.yaml"
    lone.write_text((REPO / "configs" / "coefficients.yaml").read_text(encoding="utf-8"))
    assert load_catalog(str(lone)) == catalog


def test_default_catalog_is_cached_and_read_only(catalog: Catalog) -> None:
    assert load_catalog() is catalog
    with pytest.raises(TypeError):
        catalog.workloads["x"] = catalog.preset("chatbot")  # type: ignore[index]


FACT_KEYS = (
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "torch_dtype",
)


def test_model_facts() -> None:
    facts = load_model_facts("Meta-Llama/Llama-3.1-8B-Instruct")
    assert facts is load_model_facts("llama-3.1-8b-instruct")
    raw = json.loads(HF_CONFIG_FIXTURE.read_text(encoding="utf-8"))
    for key in FACT_KEYS:
        assert facts[key] == raw[key], key
    assert facts["bytes_per_param"] == 2
    with pytest.raises(ConfigError, match=r"unknown model 'gpt-9'.*known: .*qwen3-14b"):
        load_model_facts("gpt-9")


@requires_reference
def test_model_facts_match_blis_model_configs() -> None:
    facts = load_model_facts("llama-3.1-8b-instruct")
    raw = json.loads((REFERENCE / "model_configs/llama-3.1-8b-instruct/config.json").read_text())
    for key in FACT_KEYS:
        assert facts[key] == raw[key], key
    for folder in sorted((REFERENCE / "model_configs").iterdir()):
        raw = json.loads((folder / "config.json").read_text())
        facts = load_model_facts(folder.name)
        assert {
            k: facts[k]
            for k in ("num_hidden_layers", "hidden_size", "num_key_value_heads", "intermediate_size", "vocab_size")
        } == {
            k: raw[k]
            for k in ("num_hidden_layers", "hidden_size", "num_key_value_heads", "intermediate_size", "vocab_size")
        }


# --- BLIS-format fixtures (run in a bare clone) ----------------------------------------------

FIXTURE_KEYS = [  # (model, tp, GPU, vLLM version) of the rows in blis_defaults.yaml
    ("meta-llama/llama-3.1-8b-instruct", 2, "H100", "vllm/vllm-openai:v0.8.4"),
    ("redhatai/phi-4-fp8-dynamic", 1, "H100", "vllm/vllm-openai:v0.8.4"),
    ("qwen/qwen2.5-7b-instruct", 4, "H100", "vllm/vllm-openai:v0.8.4"),
    ("meta-llama/llama-3.1-8b-instruct", 1, "H100", "vllm/vllm-openai:v0.8.4"),
]


def _rows_for(cat: Catalog, key: tuple) -> list[CoefficientEntry]:
    return [e for e in cat.coefficients if (e.model, e.tp, e.gpu, e.vllm_version) == key]


def test_blis_format_file_loads(catalog: Catalog) -> None:
    cat = load_catalog(str(BLIS_DEFAULTS_FIXTURE))
    assert cat.source.endswith("blis_defaults.yaml")
    # Rows grouped by model in order of first appearance, file order kept within a model.
    assert [(e.model, e.tp) for e in cat.coefficients] == [
        ("meta-llama/llama-3.1-8b-instruct", 2),
        ("meta-llama/llama-3.1-8b-instruct", 1),
        ("redhatai/phi-4-fp8-dynamic", 1),
        ("redhatai/phi-4-fp8-dynamic", 1),
        ("qwen/qwen2.5-7b-instruct", 4),
    ]
    # Every figure is read exactly: each key's rows (the duplicate included, in order) equal the
    # shipped catalog's, and the first of two matching rows wins, as in BLIS.
    for key in FIXTURE_KEYS:
        assert _rows_for(cat, key) == _rows_for(catalog, key), key
        assert cat.find_coefficients(*key) == catalog.find_coefficients(*key), key
    phi = _rows_for(cat, FIXTURE_KEYS[1])
    assert len(phi) == 2 and cat.find_coefficients(*FIXTURE_KEYS[1]) is phi[0]
    assert phi[0].alpha == (6933.519704638618, 2.881848162088737, 6024.521165831988)
    assert cat.find_coefficients("redhatai/phi-4-fp8-dynamic", 2, "H100", "vllm/vllm-openai:v0.8.4") is None
    # Defaults and presets (flow-style mappings and a missing field both read as in Go).
    assert dict(cat.model_defaults) == {
        m: catalog.defaults_for(m) for m in ("qwen/qwen2.5-7b-instruct", "meta-llama/llama-3.1-8b-instruct")
    }
    assert list(cat.workloads) == ["multidoc", "chatbot"]
    assert cat.preset("chatbot") == catalog.preset("chatbot")
    assert cat.preset("multidoc") == catalog.preset("multidoc")
    assert cat.preset("multidoc").prefix_tokens == 0
    # A BLIS file has no GPU section: load_catalog takes the shipped GPUs, the raw reader none.
    assert cat.gpus == catalog.gpus
    raw = read_blis_defaults(BLIS_DEFAULTS_FIXTURE)
    assert dict(raw.gpus) == {} and raw.coefficients == cat.coefficients


def test_cli_runs_with_a_blis_format_defaults_file(blis) -> None:
    args = (
        "run",
        "--model",
        "meta-llama/llama-3.1-8b-instruct",
        "--log",
        "error",
        "--num-instances",
        "2",
        "--num-requests",
        "20",
        "--rate",
        "50",
    )
    code, shipped, err = blis(*args)
    assert code == 0, err
    code, from_file, err = blis(*args, "--defaults-filepath", str(BLIS_DEFAULTS_FIXTURE))
    assert code == 0, err
    # Same default (H100, TP 2) and the same coefficients: the same run.
    assert from_file == shipped and "Simulation Metrics" in shipped


def test_blis_format_hardware_config_loads(catalog: Catalog) -> None:
    gpus = load_hardware_config(HARDWARE_FIXTURE)
    assert list(gpus) == ["A100-SXM", "H100"]
    assert dict(gpus) == {name: catalog.gpus[name] for name in gpus}  # integers (312, 500, 20) read as floats
    assert all(isinstance(v, float) for spec in gpus.values() for v in vars(spec).values())


def test_hf_config_facts() -> None:
    facts = model_facts_from_hf(HF_CONFIG_FIXTURE)
    shipped = load_model_facts("llama-3.1-8b-instruct")
    assert facts == {k: v for k, v in shipped.items() if k not in ("name", "hf_id")}
    assert "rope_theta" not in facts and "_comment" not in facts


@requires_reference
def test_fixtures_agree_with_blis_reference_files() -> None:
    # The hand-written fixtures stay faithful to the files they stand in for.
    blis = read_blis_defaults(REFERENCE / "defaults.yaml")
    fixture = read_blis_defaults(BLIS_DEFAULTS_FIXTURE)
    for key in FIXTURE_KEYS:
        assert _rows_for(fixture, key) == _rows_for(blis, key), key
    for model, d in fixture.model_defaults.items():
        assert blis.defaults_for(model) == d, model
    for name, preset in fixture.workloads.items():
        assert blis.preset(name) == preset, name
    assert load_hardware_config(HARDWARE_FIXTURE) == load_hardware_config(REFERENCE / "hardware_config.json")
    facts = model_facts_from_hf(HF_CONFIG_FIXTURE)
    assert facts == model_facts_from_hf(REFERENCE / "model_configs/llama-3.1-8b-instruct/config.json")


# --- errors --------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "defaults.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD_ROW = """\
models:
  - id: m
    GPU: H100
    tensor_parallelism: 1
    vllm_version: v
    alpha_coeffs: [1, 2, 3]
    beta_coeffs: [1.5, 2, 3]
    total_kv_blocks: 10
"""


def test_minimal_blis_file_uses_go_zero_values(tmp_path: Path) -> None:
    cat = load_catalog(_write(tmp_path, GOOD_ROW))
    assert cat.coefficients == (CoefficientEntry("m", "H100", 1, "v", (1.0, 2.0, 3.0), (1.5, 2.0, 3.0), 10, 0.0),)
    assert dict(cat.model_defaults) == {} and dict(cat.workloads) == {}


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: file not found"):
        load_catalog(str(path))


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "models:\n  - id: m\n    GPU: [H100\n")
    with pytest.raises(ConfigError, match=r"defaults\.yaml: invalid YAML at line \d+"):
        load_catalog(path)


def test_duplicate_key_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: a\nversion: b\n")
    with pytest.raises(ConfigError, match=r"defaults\.yaml: invalid YAML at line 2, column \d+: duplicate key"):
        load_catalog(path)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_ROW + "modles: []\n")
    with pytest.raises(ConfigError, match=r"defaults\.yaml: unknown top-level key 'modles' \(allowed: models"):
        load_catalog(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("alpha_coeffs: [1, 2, 3]", "alpha_coeffs: [1, x, 3]", r"models\[0\]\.alpha_coeffs must be a list of numbers"),
        ("tensor_parallelism: 1", "tensor_parallelism: two", r"models\[0\]\.tensor_parallelism must be an integer"),
        (
            "total_kv_blocks: 10",
            "total_kv_blocks: 10\n    colour: red",
            r"models\[0\]: unknown field 'colour' \(allowed: id, GPU",
        ),
        ("GPU: H100", "GPU: [H100]", r"models\[0\]\.GPU must be a string"),
    ],
)
def test_bad_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _write(tmp_path, GOOD_ROW.replace(old, new))
    with pytest.raises(ConfigError, match=r"defaults\.yaml: " + message):
        load_catalog(path)


def test_bad_workload_and_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "workloads:\n  chat:\n    prompt_tokens: 1.5\n")
    with pytest.raises(ConfigError, match=r"workloads\['chat'\]\.prompt_tokens must be an integer"):
        load_catalog(path)
    path = _write(tmp_path, "defaults: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"defaults\.yaml: defaults must be a mapping"):
        load_catalog(path)


def test_our_schema_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "schema: blis-gym/workloads/v1\npresets: {}\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"c\.yaml: schema must be 'blis-gym/coefficients/v1'"):
        load_catalog(path)
    path = _write(
        tmp_path,
        "schema: blis-gym/coefficients/v1\nmodels:\n  m:\n"
        "  - {gpu: H100, tp: 1, vllm_version: v, alpha: [1], beta: [2],"
        " total_kv_blocks: 3}\n",
        "c.yaml",
    )
    with pytest.raises(ConfigError, match=r"c\.yaml: models\['m'\]\[0\]\.best_loss is missing"):
        load_catalog(path)


def test_shipped_yaml_reads_the_same_with_libyaml(tmp_path: Path) -> None:
    """The shipped data files are read with libyaml's parser (startup time); every one of them
    gives exactly what the pure-Python parser we use for users' files gives."""
    from blis_gym.config import yamlio

    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len(files) > 30
    for f in files:
        text = f.read_text("utf-8")
        assert yamlio.load(text, shipped=True) == yamlio.load(text), f
    # The fast reader keeps yaml.v3's rules: duplicate keys fail, 1e3 is a float.
    with pytest.raises(yaml.YAMLError, match="duplicate key"):
        yamlio.load("a: 1\na: 2\n", shipped=True)
    assert yamlio.load("x: 1e3\n", shipped=True) == {"x": 1000.0}


def test_catalog_json_is_the_yaml_files_documents(tmp_path: Path) -> None:
    """configs/catalog.json (read instead of the YAML: faster start-up) is fresh, and gives the
    very documents the YAML files give; an edited YAML file is read itself, cache or not."""
    import shutil

    from blis_gym.config import catalog as cat
    from blis_gym.config import yamlio

    shipped = ROOT / "configs"
    cache = json.loads((shipped / cat.CACHE_FILE).read_text("utf-8"))
    texts = {name: (shipped / name).read_text("utf-8") for name in cat.CATALOG_FILES}
    assert cache["checksums"] == {n: cat._checksum(t) for n, t in texts.items()}, (
        "configs/catalog.json is stale: run python tools/gen_configs.py --cache"
    )
    # Order matters (the first matching coefficients row wins): compare as JSON text.
    assert json.dumps(cache["documents"]) == json.dumps({n: yamlio.load(t) for n, t in texts.items()})
    assert cat.shipped_documents(shipped) is not None

    for name in cat.CATALOG_FILES:
        shutil.copy(shipped / name, tmp_path / name)
    shutil.copy(shipped / cat.CACHE_FILE, tmp_path / cat.CACHE_FILE)
    assert cat.shipped_documents(tmp_path) == cache["documents"]
    edited = texts[cat.WORKLOADS_FILE].replace("prompt_mean: 256", "prompt_mean: 257", 1)
    assert edited != texts[cat.WORKLOADS_FILE]
    (tmp_path / cat.WORKLOADS_FILE).write_text(edited, "utf-8")
    docs = cat.shipped_documents(tmp_path)
    assert docs[cat.WORKLOADS_FILE] == yamlio.load(edited) != cache["documents"][cat.WORKLOADS_FILE]
