"""Policy bundles (--policy-config): loading, validation errors, and flag precedence."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from testkit import FIXTURES, REFERENCE_DATA, requires_reference

from blis_gym.config.bundle import (
    ADMISSION_POLICY_NAMES,
    PRIORITY_POLICY_NAMES,
    ROUTING_POLICY_NAMES,
    SCHEDULER_NAMES,
    PolicyBundle,
    apply_bundle,
    effective_scorers,
    load_policy_bundle,
    shipped_bundles,
)
from blis_gym.errors import ConfigError
from blis_gym.policies import ADMISSION, PRIORITY, ROUTING, SCHEDULER
from blis_gym.policies.scorers import DEFAULT_SCORERS, SCORER_NAMES, ScorerConfig

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "configs" / "policies"
# BLIS's own examples (CI only; see testkit.requires_reference) and hand-written stand-ins in
# the same layout, so BLIS-style bundles stay covered in a bare clone.
REFERENCE_EXAMPLES = REFERENCE_DATA / "examples"
BLIS_STYLE_BUNDLES = {  # reference example name -> our fixture
    "policy-config.yaml": FIXTURES / "blis_policy_config.yaml",
    "weighted-routing.yaml": FIXTURES / "blis_weighted_routing.yaml",
}
BLIS_STYLE_EXPECTED = {
    "policy-config.yaml": PolicyBundle(
        admission_policy="always-admit", routing_policy="round-robin", priority_policy="constant", scheduler="fcfs"
    ),
    "weighted-routing.yaml": PolicyBundle(
        admission_policy="always-admit",
        routing_policy="weighted",
        scorers=DEFAULT_SCORERS,
        priority_policy="constant",
        scheduler="fcfs",
    ),
}

# The option values a plain `blis run` starts from (BLIS's flag defaults).
DEFAULTS = {
    "admission_policy": "always-admit",
    "token_bucket_capacity": 10000.0,
    "token_bucket_refill_rate": 1000.0,
    "routing_policy": "round-robin",
    "routing_scorers": "",
    "priority_policy": "constant",
    "scheduler": "fcfs",
    "num_instances": 4,
}


def write(tmp_path: Path, text: str, name: str = "bundle.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy_bundle(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


# --- shipped examples -------------------------------------------------------------------------

SHIPPED = sorted(POLICIES.glob("*.yaml"))


def test_shipped_examples_exist():
    names = {p.name for p in SHIPPED}
    assert {"weighted-default.yaml", "token-bucket.yaml", "slo-priority.yaml", "pathological.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_example_loads_and_documents_how_to_run(path: Path):
    bundle = load_policy_bundle(path)
    assert bundle != PolicyBundle()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#")
    assert f"--policy-config configs/policies/{path.name}" in text


def test_weighted_default_matches_the_default_profile():
    bundle = load_policy_bundle(POLICIES / "weighted-default.yaml")
    assert bundle.routing_policy == "weighted"
    assert bundle.scorers == DEFAULT_SCORERS


def test_token_bucket_example():
    bundle = load_policy_bundle(POLICIES / "token-bucket.yaml")
    assert (bundle.admission_policy, bundle.routing_policy) == ("token-bucket", "least-loaded")
    # The CLI requires > 0 for token-bucket; the shipped example must pass that too.
    assert bundle.token_bucket_capacity > 0 and bundle.token_bucket_refill_rate > 0


def test_slo_priority_example():
    bundle = load_policy_bundle(POLICIES / "slo-priority.yaml")
    assert (bundle.priority_policy, bundle.scheduler) == ("slo-based", "priority-fcfs")
    assert bundle.routing_policy == "" and bundle.admission_policy == ""


def test_pathological_example_inverts_exactly_once():
    bundle = load_policy_bundle(POLICIES / "pathological.yaml")
    assert bundle.routing_policy == "always-busiest"
    # inverted-slo with reverse-priority cancels out into normal scheduling.
    inverted = (bundle.priority_policy == "inverted-slo") + (bundle.scheduler == "reverse-priority")
    assert inverted == 1


@requires_reference
@pytest.mark.parametrize("name", ["policy-config.yaml", "weighted-routing.yaml"])
def test_reference_examples_load(name: str):
    path = REFERENCE_EXAMPLES / name
    assert path.is_file(), f"reference example missing: {path}"
    bundle = load_policy_bundle(path)
    assert bundle.admission_policy == "always-admit"
    assert bundle.scheduler == "fcfs"
    if name == "weighted-routing.yaml":
        assert bundle.scorers == DEFAULT_SCORERS
    # The stand-in fixture says the same thing, so the bare-clone test below stays faithful.
    assert bundle == load_policy_bundle(BLIS_STYLE_BUNDLES[name]) == BLIS_STYLE_EXPECTED[name]


@pytest.mark.parametrize("name", sorted(BLIS_STYLE_BUNDLES))
def test_blis_style_bundles_load(name: str):
    # Comments, commented-out keys, sections in any order, block-style scorer lists.
    bundle = load_policy_bundle(BLIS_STYLE_BUNDLES[name])
    assert bundle == BLIS_STYLE_EXPECTED[name]
    assert all(isinstance(s.weight, float) for s in bundle.scorers)
    out = apply_bundle(bundle, DEFAULTS, explicit=set())
    if name == "policy-config.yaml":  # every section names BLIS's default: a no-op bundle
        assert {k: v for k, v in out.items() if k != "bundle_scorers"} == DEFAULTS
    else:
        assert out["routing_policy"] == "weighted"
        assert effective_scorers(out["routing_scorers"], out["bundle_scorers"]) == DEFAULT_SCORERS


def test_shipped_examples_are_installed_package_data():
    # configs/ is installed as blis_gym.configs; the examples live in its policies/ folder.
    installed = resources.files("blis_gym.configs") / "policies"
    assert {p.name for p in installed.iterdir() if p.name.endswith(".yaml")} == {p.name for p in SHIPPED}


# --- loading valid files ----------------------------------------------------------------------


def test_empty_file_is_an_empty_bundle(tmp_path):
    assert load_policy_bundle(write(tmp_path, "")) == PolicyBundle()
    assert load_policy_bundle(write(tmp_path, "# only a comment\n")) == PolicyBundle()


def test_null_sections_and_empty_names_are_unset(tmp_path):
    text = "admission:\nrouting:\n  policy: ''\n  scorers: []\npriority: {}\nscheduler:\n"
    assert load_policy_bundle(write(tmp_path, text)) == PolicyBundle()


def test_full_bundle(tmp_path):
    text = """
admission:
  policy: token-bucket
  token_bucket_capacity: 2500
  token_bucket_refill_rate: 12.5
routing:
  policy: weighted
  scorers:
    - {name: queue-depth, weight: 1}
    - {name: load-balance, weight: 0.5}
priority:
  policy: slo-based
scheduler: sjf
"""
    bundle = load_policy_bundle(write(tmp_path, text))
    assert bundle == PolicyBundle(
        admission_policy="token-bucket",
        token_bucket_capacity=2500.0,
        token_bucket_refill_rate=12.5,
        routing_policy="weighted",
        scorers=(ScorerConfig("queue-depth", 1.0), ScorerConfig("load-balance", 0.5)),
        priority_policy="slo-based",
        scheduler="sjf",
    )
    assert all(isinstance(s.weight, float) for s in bundle.scorers)
    assert isinstance(bundle.token_bucket_capacity, float)


def test_zero_token_bucket_values_are_set(tmp_path):
    text = "admission:\n  token_bucket_capacity: 0\n  token_bucket_refill_rate: 0.0\n"
    bundle = load_policy_bundle(write(tmp_path, text))
    assert bundle.token_bucket_capacity == 0.0
    assert bundle.token_bucket_refill_rate == 0.0


def test_anchors_and_merge_keys_work(tmp_path):
    text = "routing:\n  scorers:\n    - &qd {name: queue-depth, weight: 2}\n    - {<<: *qd, name: kv-utilization}\n"
    bundle = load_policy_bundle(write(tmp_path, text))
    assert bundle.scorers == (ScorerConfig("queue-depth", 2.0), ScorerConfig("kv-utilization", 2.0))


@pytest.mark.parametrize("literal, value", [("1e3", 1000.0), ("2.5E+2", 250.0), ("1_000", 1000.0)])
def test_exponent_numbers_are_numbers(tmp_path, literal, value):
    # PyYAML's YAML 1.1 rules read `1e3` as a string; BLIS (YAML 1.2) reads a number.
    bundle = load_policy_bundle(write(tmp_path, f"admission:\n  token_bucket_capacity: {literal}\n"))
    assert bundle.token_bucket_capacity == value


@pytest.mark.parametrize(
    "family, names, registry",
    [
        ("admission", ADMISSION_POLICY_NAMES, ADMISSION),
        ("routing", ROUTING_POLICY_NAMES, ROUTING),
        ("priority", PRIORITY_POLICY_NAMES, PRIORITY),
        ("scheduler", SCHEDULER_NAMES, SCHEDULER),
    ],
)
def test_every_reference_policy_name_loads(tmp_path, family, names, registry):
    # Reference names load even before they are built; anything registered loads too.
    for name in sorted(set(names) | set(registry.names())):
        text = f"scheduler: {name}\n" if family == "scheduler" else f"{family}:\n  policy: {name}\n"
        bundle = load_policy_bundle(write(tmp_path, text))
        assert getattr(bundle, "scheduler" if family == "scheduler" else f"{family}_policy") == name


# --- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="file not found") as info:
        load_policy_bundle(path)
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError, match="directory") as info:
        load_policy_bundle(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_unreadable_file(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"scheduler: \xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read file") as info:
        load_policy_bundle(path)
    assert str(path) in str(info.value)


def test_syntax_error_names_the_line(tmp_path):
    message = load_error(tmp_path, "routing:\n  policy: weighted\n  scorers: [unclosed\n")
    assert "invalid YAML at line" in message


def test_syntax_error_line_number_is_right(tmp_path):
    message = load_error(tmp_path, "scheduler: fcfs\npriority:\n  policy: constant\n   bad: indent\n")
    assert "at line 4" in message


def test_several_documents_is_an_error(tmp_path):
    message = load_error(tmp_path, "scheduler: fcfs\n---\nscheduler: sjf\n")
    assert "invalid YAML at line 2" in message and "single document" in message


def test_duplicate_key_is_an_error(tmp_path):
    message = load_error(tmp_path, "scheduler: fcfs\nscheduler: sjf\n")
    assert "duplicate key 'scheduler'" in message and "line 2" in message


@pytest.mark.parametrize("text", ["- fcfs\n", "just-a-string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    message = load_error(tmp_path, text)
    assert "top level" in message and "mapping expected" in message
    assert "admission, routing, priority, scheduler, instance_pool" in message


@pytest.mark.parametrize(
    "text, field, allowed",
    [
        (
            "schedular: fcfs\n",
            "schedular",
            "admission, routing, priority, scheduler, instance_pool, autoscaler, node_pools, instance_lifecycle",
        ),
        (
            "admission:\n  polcy: reject-all\n",
            "admission.polcy",
            "policy, token_bucket_capacity, token_bucket_refill_rate",
        ),
        ("routing:\n  policy: weighted\n  scorer: []\n", "routing.scorer", "policy, scorers"),
        ("priority:\n  policy: constant\n  score: 3\n", "priority.score", "policy"),
        (
            "routing:\n  scorers:\n    - {name: queue-depth, weight: 1}\n    - {name: kv-utilization, wieght: 1}\n",
            "routing.scorers[1].wieght",
            "name, weight",
        ),
    ],
)
def test_unknown_keys_list_the_allowed_ones(tmp_path, text, field, allowed):
    message = load_error(tmp_path, text)
    assert f"{field}: unknown key" in message
    assert f"(allowed: {allowed})" in message


@pytest.mark.parametrize(
    "text, field, problem",
    [
        # sections that are not mappings
        ("admission: always-admit\n", "admission", "mapping"),
        ("routing: [weighted]\n", "routing", "mapping"),
        ("priority: 1\n", "priority", "mapping"),
        ("routing:\n  scorers:\n    - queue-depth:2\n", "routing.scorers[0]", "mapping"),
        ("routing:\n  scorers:\n    -\n", "routing.scorers[0]", "mapping"),
        # names that are not strings
        ("scheduler: 3\n", "scheduler", "string expected"),
        ("scheduler: [fcfs]\n", "scheduler", "string expected"),
        ("admission:\n  policy: true\n", "admission.policy", "string expected"),
        ("routing:\n  policy: {name: weighted}\n", "routing.policy", "string expected"),
        ("priority:\n  policy: 1.5\n", "priority.policy", "string expected"),
        ("routing:\n  scorers:\n    - {name: 7, weight: 1}\n", "routing.scorers[0].name", "string expected"),
        # numbers that are not numbers
        ("admission:\n  token_bucket_capacity: lots\n", "admission.token_bucket_capacity", "number expected"),
        ("admission:\n  token_bucket_capacity: '100'\n", "admission.token_bucket_capacity", "number expected"),
        ("admission:\n  token_bucket_refill_rate: true\n", "admission.token_bucket_refill_rate", "number expected"),
        ("admission:\n  token_bucket_refill_rate: [1]\n", "admission.token_bucket_refill_rate", "number expected"),
        (
            "routing:\n  scorers:\n    - {name: queue-depth, weight: heavy}\n",
            "routing.scorers[0].weight",
            "number expected",
        ),
        (
            "routing:\n  scorers:\n    - {name: queue-depth, weight: 1}\n    - {name: load-balance, weight: yes}\n",
            "routing.scorers[1].weight",
            "number expected",
        ),
        (
            "routing:\n  scorers:\n    - {name: queue-depth, weight: 1" + "0" * 400 + "}\n",
            "routing.scorers[0].weight",
            "must be a finite number",
        ),
    ],
)
def test_wrong_types_name_the_field(tmp_path, text, field, problem):
    message = load_error(tmp_path, text)
    assert f"{field}: {problem}" in message


@pytest.mark.parametrize(
    "field, family, name",
    [
        ("admission.policy", "admission policy", "token_bucket"),
        ("routing.policy", "routing policy", "least_loaded"),
        ("priority.policy", "priority policy", "slo"),
        ("scheduler", "scheduler", "lifo"),
    ],
)
def test_unknown_policy_names_list_the_valid_ones(tmp_path, field, family, name):
    if field == "scheduler":
        text = f"scheduler: {name}\n"
    else:
        section = field.split(".")[0]
        text = f"{section}:\n  policy: {name}\n"
    message = load_error(tmp_path, text)
    assert f"{field}: unknown {family} {name!r}" in message
    names = {
        "admission.policy": ADMISSION_POLICY_NAMES,
        "routing.policy": ROUTING_POLICY_NAMES,
        "priority.policy": PRIORITY_POLICY_NAMES,
        "scheduler": SCHEDULER_NAMES,
    }[field]
    assert f"(valid: {', '.join(sorted(names))})" in message


@pytest.mark.parametrize(
    "value, problem",
    [
        ("-1", "non-negative"),
        ("-0.5", "non-negative"),
        (".nan", "a finite number"),
        (".inf", "a finite number"),
        ("-.inf", "a finite number"),
        ("1" + "0" * 400, "a finite number"),
    ],
    ids=["neg-int", "neg-float", "nan", "inf", "neg-inf", "huge-int"],
)
@pytest.mark.parametrize("key", ["token_bucket_capacity", "token_bucket_refill_rate"])
def test_bad_token_bucket_values(tmp_path, key, value, problem):
    message = load_error(tmp_path, f"admission:\n  {key}: {value}\n")
    assert f"admission.{key}: must be {problem}" in message


@pytest.mark.parametrize(
    "entries, index, needle",
    [
        ("- {name: queue-depth, weight: 2}\n    - {name: cache-hit, weight: 1}", 1, "unknown scorer 'cache-hit'"),
        ("- {name: queue-depth, weight: 2}\n    - {name: queue-depth, weight: 1}", 1, "duplicate scorer 'queue-depth'"),
        ("- {name: queue-depth, weight: 0}", 0, "weight must be a finite positive number"),
        (
            "- {name: kv-utilization, weight: 1}\n    - {name: queue-depth, weight: -2}",
            1,
            "weight must be a finite positive number",
        ),
        ("- {name: queue-depth, weight: .nan}", 0, "weight must be a finite positive number"),
        ("- {name: queue-depth, weight: .inf}", 0, "weight must be a finite positive number"),
    ],
)
def test_bad_scorer_entries_name_the_index(tmp_path, entries, index, needle):
    message = load_error(tmp_path, f"routing:\n  scorers:\n    {entries}\n")
    assert f"routing.scorers[{index}]" in message
    assert needle in message


def test_unknown_scorer_lists_the_valid_ones(tmp_path):
    message = load_error(tmp_path, "routing:\n  scorers:\n    - {name: nope, weight: 1}\n")
    assert f"(valid: {', '.join(SCORER_NAMES)})" in message


@pytest.mark.parametrize("missing, present", [("weight", "name: queue-depth"), ("name", "weight: 1")])
def test_scorer_entry_needs_name_and_weight(tmp_path, missing, present):
    message = load_error(tmp_path, f"routing:\n  scorers:\n    - {{{present}}}\n")
    assert f"routing.scorers[0].{missing}: missing" in message


def test_scorers_must_be_a_list(tmp_path):
    message = load_error(tmp_path, "routing:\n  scorers: queue-depth:2\n")
    assert "routing.scorers: list of {name, weight} entries expected" in message


# --- applying a bundle ------------------------------------------------------------------------

FULL = PolicyBundle(
    admission_policy="token-bucket",
    token_bucket_capacity=500.0,
    token_bucket_refill_rate=50.0,
    routing_policy="weighted",
    scorers=(ScorerConfig("queue-depth", 1.0),),
    priority_policy="slo-based",
    scheduler="priority-fcfs",
)


def test_bundle_values_become_defaults():
    out = apply_bundle(FULL, DEFAULTS, explicit=set())
    assert out["admission_policy"] == "token-bucket"
    assert out["token_bucket_capacity"] == 500.0
    assert out["token_bucket_refill_rate"] == 50.0
    assert out["routing_policy"] == "weighted"
    assert out["priority_policy"] == "slo-based"
    assert out["scheduler"] == "priority-fcfs"
    assert out["bundle_scorers"] == (ScorerConfig("queue-depth", 1.0),)
    # Options a bundle cannot set pass through untouched.
    assert out["num_instances"] == 4 and out["routing_scorers"] == ""


def test_apply_bundle_does_not_mutate_its_input():
    values = dict(DEFAULTS)
    apply_bundle(FULL, values, explicit=set())
    assert values == DEFAULTS


@pytest.mark.parametrize(
    "option",
    [
        "admission_policy",
        "token_bucket_capacity",
        "token_bucket_refill_rate",
        "routing_policy",
        "priority_policy",
        "scheduler",
    ],
)
def test_explicit_flag_wins(option):
    typed = {
        "admission_policy": "reject-all",
        "token_bucket_capacity": 123.0,
        "token_bucket_refill_rate": 7.0,
        "routing_policy": "least-loaded",
        "priority_policy": "inverted-slo",
        "scheduler": "sjf",
    }[option]
    out = apply_bundle(FULL, dict(DEFAULTS, **{option: typed}), explicit={option})
    assert out[option] == typed
    # Only that option is protected; the rest still come from the bundle.
    bundle_values = {
        "admission_policy": FULL.admission_policy,
        "routing_policy": FULL.routing_policy,
        "scheduler": FULL.scheduler,
        "priority_policy": FULL.priority_policy,
    }
    assert all(out[k] == v for k, v in bundle_values.items() if k != option)


def test_explicit_flag_wins_even_when_it_equals_the_default():
    # The user typed `--scheduler fcfs`: that is a choice, not "unset".
    out = apply_bundle(FULL, DEFAULTS, explicit={"scheduler"})
    assert out["scheduler"] == "fcfs"


def test_unset_bundle_fields_do_not_override():
    out = apply_bundle(PolicyBundle(), DEFAULTS, explicit=set())
    assert {k: v for k, v in out.items() if k != "bundle_scorers"} == DEFAULTS
    assert out["bundle_scorers"] == ()


def test_partial_bundle_only_sets_its_fields():
    bundle = PolicyBundle(priority_policy="inverted-slo")
    out = apply_bundle(bundle, DEFAULTS, explicit=set())
    assert out["priority_policy"] == "inverted-slo"
    assert out["scheduler"] == "fcfs" and out["routing_policy"] == "round-robin"
    assert out["token_bucket_capacity"] == 10000.0


def test_zero_in_yaml_is_set_not_unset(tmp_path):
    path = write(tmp_path, "admission:\n  token_bucket_capacity: 0.0\n")
    out = apply_bundle(load_policy_bundle(path), DEFAULTS, explicit=set())
    assert out["token_bucket_capacity"] == 0.0
    assert out["token_bucket_refill_rate"] == 1000.0


def test_bundle_scorers_only_when_routing_scorers_empty():
    out = apply_bundle(FULL, DEFAULTS, explicit=set())
    assert effective_scorers(out["routing_scorers"], out["bundle_scorers"]) == (ScorerConfig("queue-depth", 1.0),)

    flagged = apply_bundle(FULL, dict(DEFAULTS, routing_scorers="load-balance:2"), explicit={"routing_scorers"})
    assert flagged["routing_scorers"] == "load-balance:2"
    assert effective_scorers(flagged["routing_scorers"], flagged["bundle_scorers"]) == (
        ScorerConfig("load-balance", 2.0),
    )


def test_no_scorers_anywhere_means_default_profile():
    out = apply_bundle(PolicyBundle(routing_policy="weighted"), DEFAULTS, explicit=set())
    assert effective_scorers(out["routing_scorers"], out["bundle_scorers"]) == ()


def test_effective_scorers_rejects_a_bad_flag():
    with pytest.raises(ConfigError, match="--routing-scorers"):
        effective_scorers("queue-depth", ())


def test_end_to_end_with_a_shipped_example():
    bundle = load_policy_bundle(POLICIES / "token-bucket.yaml")
    out = apply_bundle(bundle, dict(DEFAULTS, token_bucket_capacity=8000.0), explicit={"token_bucket_capacity"})
    assert out["admission_policy"] == "token-bucket"
    assert out["token_bucket_capacity"] == 8000.0
    assert out["token_bucket_refill_rate"] == 500.0
    assert out["routing_policy"] == "least-loaded"


# --- shipped bundles by name ------------------------------------------------------------------


def test_shipped_bundles_load_by_bare_name_from_any_directory(tmp_path, monkeypatch):

    names = shipped_bundles()
    assert {"weighted-default", "token-bucket", "slo-priority", "pathological"} <= set(names)
    expected = {n: load_policy_bundle(ROOT / "configs" / "policies" / f"{n}.yaml") for n in names}
    monkeypatch.chdir(tmp_path)
    for name in names:
        assert load_policy_bundle(name) == expected[name]


def test_missing_file_lists_shipped_bundle_names(tmp_path):
    with pytest.raises(ConfigError, match="file not found.*weighted-default") as err:
        load_policy_bundle(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err.value)


def test_cli_runs_a_shipped_bundle_by_name(blis, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = blis(
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
        "--policy-config",
        "token-bucket",
        "--trace-level",
        "decisions",
        "--summarize-trace",
    )
    assert code == 0, err
    assert "Total Decisions: 20" in out
    # The bundle did act: the same run with its settings as flags prints the same, and the
    # bucket rejected some requests (with no bundle all 20 are admitted).
    code, same, err = blis(
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
        "--admission-policy",
        "token-bucket",
        "--token-bucket-capacity",
        "5000",
        "--token-bucket-refill-rate",
        "500",
        "--routing-policy",
        "least-loaded",
        "--trace-level",
        "decisions",
        "--summarize-trace",
    )
    assert code == 0, err
    assert out == same
    assert "Rejected: 0" not in out


def test_run_help_names_every_shipped_bundle(blis):
    code, out, _ = blis("run", "--help")
    flat = " ".join(out.split()).replace("- ", "-")  # the help wraps long names after a hyphen
    assert code == 0 and all(name in flat for name in shipped_bundles())
