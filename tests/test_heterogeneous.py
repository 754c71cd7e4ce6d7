"""Heterogeneous fleets (``--instance-pool``): per-instance hardware, exactly applied."""

from __future__ import annotations

import gymnasium as gym
import pytest

import blis_gym  # noqa: F401 - registers the ids
from blis_gym.baselines import cli_options_for, make_baseline
from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.envs.cluster_env import result_metrics
from blis_gym.envs.observation import INSTANCE_FEATURES
from blis_gym.plan import RunOptions, resolve, simulate
from blis_gym.policies import ADMISSION, ROUTING

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
    return resolve(RunOptions(model=MODEL, vllm_version=VERSION, hardware=gpu, tp=tp, log="error")).config.engine.total_kv_blocks


def test_speed_classes_reach_snapshots_and_observations():
    env = gym.make("blis_gym/Routing-v0", scenario="heterogeneous", num_requests=50).unwrapped
    obs, _ = env.reset(seed=1)
    k = len(INSTANCE_FEATURES)
    speeds = [float(obs[i * k + k - 1]) for i in range(env.num_instances)]
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
    plan = resolve(RunOptions(model=MODEL, vllm_version=VERSION, instance_pool=POOL, rate=100.0,
                              num_requests=300, routing_policy="least-loaded", log="error"))
    result = simulate(plan)
    fast, slow = result.instances[:2], result.instances[2:]
    mean = lambda ms: sum(sum(m.ttfts.values()) for m in ms) / sum(len(m.ttfts) for m in ms)  # noqa: E731
    assert sum(m.completed for m in fast) > sum(m.completed for m in slow)
    assert mean(slow) > 2 * mean(fast)


@pytest.mark.parametrize("extra, words", [
    (["--instance-pool", "H100"], ["--instance-pool", "'H100'", "GPU:TP"]),
    (["--instance-pool", "H100:2:3"], ["--instance-pool", "GPU:TP:xCOUNT"]),
    (["--instance-pool", "H100:0"], ["--instance-pool"]),
    (["--instance-pool", "B200:2"], ["B200", "available for this model"]),
    (["--instance-pool", POOL, "--hardware", "H100"], ["--instance-pool", "--hardware"]),
    (["--instance-pool", POOL, "--num-instances", "3"], ["--instance-pool", "4 instances", "--num-instances"]),
])
def test_bad_pools_fail_clearly(blis, extra, words):
    code, out, err = blis(*RUN, *extra)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err
