"""Heterogeneous fleets (``--instance-pool``): per-instance hardware, exactly applied."""

from __future__ import annotations

import gymnasium as gym
import pytest

import blis_gym  # noqa: F401 - registers the ids
from blis_gym.baselines import cli_options_for, make_baseline
from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.envs.observation import INSTANCE_FEATURES
from blis_gym.plan import RunOptions, resolve, simulate
from blis_gym.policies import ADMISSION, ROUTING
from blis_gym.report.summary import result_metrics

MODEL = "meta-llama/llama-3.1-8b-instruct"
VERSION = "vllm/vllm-openai:v0.8.4"
POOL = "H100:2:x2,A100-80:1:x2"
RUN = ["run", "--model", MODEL, "--rate", "80", "--num-requests", "120", "--log", "error"]


def test_a_pool_of_identical_entries_is_the_homogeneous_cluster(blis):
    _, pooled, _ = blis(*RUN, "--instance-pool", "H100:2:x3", "--routing-policy", "least-loaded")
    _, plain, _ = blis(*RUN, "--num-instances", "3", "--routing-policy", "least-loaded")
    assert pooled == plain and pooled.count("=== Simulation Metrics ===") == 4


@pytest.mark.parametrize("instance, gpu, tp", [(0, "H100", 2), (3, "A100-80", 1)])
def test_each_instance_runs_with_its_own_class(instance, gpu, tp):
    """Everything sent to one pool instance runs as on a single instance of that hardware."""
    opts = RunOptions(model=MODEL, vllm_version=VERSION, rate=30.0, num_requests=60, log="error")
    pooled = resolve(RunOptions(**{**vars(opts), "instance_pool": POOL}))
    sim = ClusterSimulator(pooled.config, pooled.requests, admission=ADMISSION.make("always-admit"))
    while (d := sim.advance()) is not None:
        sim.route(d, instance)
    got = sim.result().instances[instance]
    alone = simulate(resolve(RunOptions(**{**vars(opts), "hardware": gpu, "tp": tp}))).aggregate
    assert got.ttfts == alone.ttfts and got.e2es == alone.e2es
    assert sim.instances[instance].kv.total == alone_kv(gpu, tp)


def alone_kv(gpu: str, tp: int) -> int:
    return resolve(
        RunOptions(model=MODEL, vllm_version=VERSION, hardware=gpu, tp=tp, log="error")
    ).config.engine.total_kv_blocks


def test_speed_classes_reach_snapshots_and_observations():
    env = gym.make("blis_gym/Routing-v0", scenario="heterogeneous", num_requests=50).unwrapped
    obs, _ = env.reset(seed=1)
    k = len(INSTANCE_FEATURES)
    at = [name for name, _ in INSTANCE_FEATURES].index("speed")
    speeds = [float(obs[i * k + at]) for i in range(env.num_instances)]
    assert speeds[:2] == [1.0, 1.0] and 0.3 < speeds[2] == speeds[3] < 0.5
    assert [s.speed for s in env.decision.state.snapshots] == pytest.approx(speeds)


@pytest.mark.parametrize("name", ROUTING.names())
def test_every_routing_baseline_still_equals_blis_run(name):
    env = gym.make("blis_gym/Routing-v0", scenario="heterogeneous", num_requests=150)
    agent = make_baseline(name, env)
    obs, _ = env.reset(seed=3)
    done = False
    while not done:
        action, _ = agent.predict(obs)
        obs, _, done, _, info = env.step(action)
    run = cli_options_for(agent, env.unwrapped.scenario.run).with_seed(3)
    assert info["metrics"] == result_metrics(simulate(resolve(run)))


def test_least_loaded_leaves_the_slow_pair_slower():
    """Least-loaded sees queues, not speed: the slow pair drains slower, so it gets fewer
    requests but still much worse latencies (the gap a speed-aware router can close)."""
    plan = resolve(
        RunOptions(
            model=MODEL,
            vllm_version=VERSION,
            instance_pool=POOL,
            rate=100.0,
            num_requests=300,
            routing_policy="least-loaded",
            log="error",
        )
    )
    result = simulate(plan)
    fast, slow = result.instances[:2], result.instances[2:]
    mean = lambda ms: sum(sum(m.ttfts.values()) for m in ms) / sum(len(m.ttfts) for m in ms)  # noqa: E731
    assert sum(m.completed for m in fast) > sum(m.completed for m in slow)
    assert mean(slow) > 2 * mean(fast)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--instance-pool", "H100"], ["--instance-pool", "'H100'", "GPU:TP"]),
        (["--instance-pool", "H100:2:3"], ["--instance-pool", "GPU:TP:xCOUNT"]),
        (["--instance-pool", "H100:0"], ["--instance-pool"]),
        (["--instance-pool", "X9000:2"], ["X9000", "available for this model"]),
        (["--instance-pool", POOL, "--hardware", "H100"], ["--instance-pool", "--hardware"]),
        (["--instance-pool", POOL, "--num-instances", "3"], ["--instance-pool", "4 instances", "--num-instances"]),
    ],
)
def test_bad_pools_fail_clearly(blis, extra, words):
    code, out, err = blis(*RUN, *extra)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err


YAML_POOL = "instance_pool:\n  - {gpu: H100, tp: 2, count: 2}\n  - {gpu: A100-80, tp: 1, count: 2}\n"


def test_a_bundle_pool_in_yaml_form_is_the_flag(blis, tmp_path):
    bundle = tmp_path / "pool.yaml"
    bundle.write_text("routing:\n  policy: least-loaded\n" + YAML_POOL)
    code, from_file, _ = blis(*RUN, "--policy-config", str(bundle))
    _, from_flag, _ = blis(*RUN, "--instance-pool", POOL, "--routing-policy", "least-loaded")
    assert code == 0 and from_file == from_flag and from_file.count("=== Simulation Metrics ===") == 5
    # The flag beats the file, as for every bundle setting.
    _, overridden, _ = blis(*RUN, "--policy-config", str(bundle), "--instance-pool", "H100:2:x3")
    _, plain, _ = blis(*RUN, "--num-instances", "3", "--routing-policy", "least-loaded")
    assert overridden == plain


def test_a_scenario_pool_in_yaml_form_is_the_string(tmp_path):
    scenario = tmp_path / "het.yaml"
    scenario.write_text(f"model: {MODEL}\nnum_requests: 60\nrate: 50\n" + YAML_POOL)
    as_yaml = gym.make("blis_gym/Routing-v0", scenario=str(scenario)).unwrapped
    as_text = gym.make("blis_gym/Routing-v0", scenario=str(scenario), instance_pool=POOL).unwrapped
    assert as_yaml.scenario.run.instance_pool == POOL == as_text.scenario.run.instance_pool
    assert [i.speed for i in as_yaml.scenario.plan.config.pool] == [i.speed for i in as_text.scenario.plan.config.pool]


@pytest.mark.parametrize(
    "pool, words",
    [
        ("instance_pool: []", ["instance_pool", "non-empty list"]),
        ("instance_pool:\n  - {gpu: H100, tp: two}", ["instance_pool[0].tp", "positive integer", "'two'"]),
        ("instance_pool:\n  - {gpu: H100, tp: 2, cnt: 2}", ["instance_pool[0]", "unknown key 'cnt'", "count"]),
        ("instance_pool:\n  - H100:2", ["instance_pool[0]", "mapping"]),
        ("instance_pool: H100", ["instance_pool", "GPU:TP"]),
    ],
)
def test_bad_yaml_pools_name_the_file_and_entry(blis, tmp_path, pool, words):
    bundle = tmp_path / "bad.yaml"
    bundle.write_text(pool + "\n")
    code, out, err = blis(*RUN, "--policy-config", str(bundle))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for w in [str(bundle), *words]:
        assert w in err
    with pytest.raises(Exception) as info:
        gym.make("blis_gym/Routing-v0", scenario="default", instance_pool=yaml_value(pool))
    assert "instance_pool" in str(info.value)


def yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)["instance_pool"]


def test_a_kind_without_coefficients_runs_roofline(blis):
    """L40S has no trained coefficients for the model but shipped GPU specs: those instances
    run roofline (the H100 pair keeps its coefficients), and slower ones show it in speed."""
    plan = resolve(
        RunOptions(
            model=MODEL,
            vllm_version=VERSION,
            instance_pool="H100:2:x2,L40S:1:x2",
            rate=30.0,
            num_requests=100,
            log="error",
        )
    )
    pool = plan.config.pool
    assert [c.roofline is None for c in pool] == [True, True, False, False]
    assert pool[2].roofline.name == "L40S" and pool[2].roofline.tp == 1
    assert pool[0].speed == 1.0 and 0 < pool[2].speed < 1
    assert sum(m.completed for m in simulate(plan).instances) == 100
    code, _, err = blis(*RUN, "--instance-pool", "H100:2,L40S:1", "--latency-model", "blackbox")
    assert code == 2 and "L40S" in err
