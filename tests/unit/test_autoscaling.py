"""Autoscaling: node pools, the saturation analyzer, instance lifecycles and the Cost section."""

from __future__ import annotations

import json

import pytest

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.plan import RunOptions, resolve, simulate
from blis_gym.policies import ADMISSION, ROUTING
from blis_gym.report.render import stdout_text
from blis_gym.report.summary import metrics_block

MODEL = "meta-llama/llama-3.1-8b-instruct"
POOL = (
    "  - {name: h100, gpu_type: H100, gpus_per_node: 8, gpu_memory_gib: 80, initial_nodes: 1, "
    "min_nodes: 1, max_nodes: 3, provisioning_delay: {mean: %s}, cost_per_hour: 98.32}\n"
)


def bundle(
    tmp_path, interval_us=2_000_000, provisioning=5, loading=3, scrape=0.5, down_window=4_000_000, warm=True, extra=""
):
    text = (
        f"autoscaler:\n  interval_us: {interval_us}\n  scale_down_stabilization_window_us: {down_window}\n"
        f"  hpa_scrape_delay: {{mean: {scrape}}}\n"
        "node_pools:\n" + POOL % provisioning + f"instance_lifecycle:\n  loading_delay: {{mean: {loading}}}\n"
        f"  warm_start_initial_instances: {str(warm).lower()}\n" + extra
    )
    path = tmp_path / "scale.yaml"
    path.write_text(text)
    return str(path)


def opts(path, **kw):
    base = dict(
        model=MODEL,
        num_instances=2,
        policy_config=path,
        num_requests=600,
        rate=60.0,
        log="error",
        routing_policy="least-loaded",
        total_kv_blocks=3000,
    )
    return RunOptions(**{**base, **kw})


def test_scaling_under_load_adds_instances_and_conserves_requests(tmp_path):
    plan = resolve(opts(bundle(tmp_path)))
    r = simulate(plan)
    assert r.cost.scale_ups > 0 and r.cost.peak_instances > 2
    assert len(r.instances) == 2 + r.cost.scale_ups
    assert r.accounted == len(plan.requests) == r.aggregate.completed
    again = simulate(resolve(opts(bundle(tmp_path))))
    assert stdout_text(again) == stdout_text(r)  # determinism


def test_off_or_never_crossed_is_the_fixed_cluster(tmp_path):
    fixed = simulate(resolve(opts("", total_kv_blocks=None, num_requests=200, rate=5.0)))
    off = simulate(resolve(opts(bundle(tmp_path, interval_us=0), total_kv_blocks=None, num_requests=200, rate=5.0)))
    # One instance cannot scale down, and light load on a large cache never asks for more.
    one_fixed = simulate(resolve(opts("", total_kv_blocks=None, num_instances=1, num_requests=200, rate=5.0)))
    one = simulate(resolve(opts(bundle(tmp_path), total_kv_blocks=None, num_instances=1, num_requests=200, rate=5.0)))
    assert metrics_block("cluster", off.aggregate) == metrics_block("cluster", fixed.aggregate)
    assert metrics_block("cluster", one.aggregate) == metrics_block("cluster", one_fixed.aggregate)
    assert (one.cost.scale_ups, one.cost.scale_downs) == (0, 0)
    text = stdout_text(off)
    cost = json.loads(text.split("=== Cost ===\n", 1)[1].split("\n}", 1)[0] + "\n}")
    seconds = off.aggregate.sim_ended / 1e6
    assert cost["gpu_seconds"] == pytest.approx(2 * 2 * seconds)  # 2 instances x TP 2
    assert cost["node_seconds"] == pytest.approx(seconds)
    assert cost["idle_node_gpu_seconds"] == pytest.approx((8 - 4) * seconds)
    assert cost["cost"] == pytest.approx(seconds / 3600 * 98.32)
    assert "=== Cost ===" not in stdout_text(fixed)


def _agent_run(path, answer, **kw):
    """Run with the built-in router and ``answer(sim, decision)`` at each scaling tick."""
    plan = resolve(opts(path, **kw))
    sim = ClusterSimulator(
        plan.config,
        plan.requests,
        ADMISSION.make("always-admit"),
        _serving(plan),
        None,
    )
    routed: list[tuple[int, int]] = []
    sim.routing_observers.append(lambda req, target: routed.append((sim.clock, target)))
    d = sim.advance()
    while d is not None:
        assert d.kind == "scaling"
        answer(sim, d)
        d = sim.advance()
    return sim, sim.result(), routed


def _serving(plan):
    from blis_gym.cluster.autoscaler import ServingRouter

    return ServingRouter(ROUTING.make("least-loaded"))


def test_provisioning_and_loading_delay_service_by_exactly_that(tmp_path):
    """Three more instances on the first tick: the node's 4 free GPUs take two (the first two use
    4 of 8); the third needs a new node. Actuation after the 0.5 s scrape delay; the first two
    serve 3 s later (loading), the third 5 s later still (its node's provisioning)."""
    asked = []

    def answer(sim, d):
        if not asked:
            asked.append(d.time)
            sim.scale(d, {("H100", 2): 3})
        else:
            sim.scale(d, {})

    sim, r, routed = _agent_run(bundle(tmp_path), answer)
    a, a2, b = sim.autoscaler.replicas[2:5]
    t0 = asked[0] + 500_000
    assert (a.started, a.ready_at) == (a2.started, a2.ready_at) == (t0, t0 + 3_000_000)
    assert (b.started, b.ready_at) == (t0, t0 + 5_000_000 + 3_000_000)
    assert b.node is not a.node and sim.autoscaler.nodes[1].up_at == t0
    assert all(t >= a.ready_at for t, i in routed if i == 2) and any(i == 2 for _, i in routed)
    assert all(t >= b.ready_at for t, i in routed if i == 4) and any(i == 4 for _, i in routed)
    assert r.accounted == 600


def test_a_drained_instance_finishes_its_work_and_receives_none(tmp_path):
    ticks = []

    def answer(sim, d):
        ticks.append(d.time)
        sim.scale(d, {("H100", 2): -1} if len(ticks) == 2 else {})

    sim, r, routed = _agent_run(bundle(tmp_path, scrape=0), answer, num_instances=3, rate=30.0)
    drained = [rep for rep in sim.autoscaler.replicas if rep.drained_at is not None]
    assert len(drained) == 1
    rep = drained[0]
    assert rep.index == 2  # the newest serving instance (ties: the highest index)
    assert rep.drained_at == ticks[1]
    assert any(i == 2 for t, i in routed if t < rep.drained_at)
    assert not any(i == 2 for t, i in routed if t >= rep.drained_at)
    m = r.instances[2]
    assert m.completed == m.injected and m.still_running == m.still_queued == 0
    assert rep.state == "terminated" and rep.ended >= rep.drained_at
    assert r.accounted == 600 == r.aggregate.completed


def test_the_last_serving_instance_is_never_drained(tmp_path):
    def answer(sim, d):
        sim.scale(d, {("H100", 2): -5})

    sim, r, _ = _agent_run(bundle(tmp_path, scrape=0), answer, num_requests=100, rate=5.0, total_kv_blocks=None)
    assert len(sim.autoscaler.serving) == 1 and r.aggregate.completed == 100
    # The drained one was idle at once: it ended then, not at the end of the run.
    (rep,) = [x for x in sim.autoscaler.replicas if x.drained_at is not None]
    assert rep.ended is not None and rep.ended <= rep.drained_at + 60_000_000


def test_cold_start_rejects_until_an_instance_serves(tmp_path):
    plan = resolve(opts(bundle(tmp_path, warm=False, loading=1), num_requests=100, rate=50.0))
    r = simulate(plan)
    assert r.rejected == 50  # the first second's arrivals (1 s of loading)
    assert r.accounted == 100


def _pool(extra: str = "", name: str = "a", gpu: str = "H100", per_node: int = 8) -> str:
    return f"  - {{name: {name}, gpu_type: {gpu}, gpus_per_node: {per_node}, gpu_memory_gib: 80{extra}}}\n"


@pytest.mark.parametrize(
    "text, words",
    [
        ("autoscaler:\n  interval_us: 1000\n", ["autoscaler", "node_pools"]),
        ("node_pools:\n" + _pool(", min_nodes: 3, max_nodes: 2"), ["min_nodes", "max_nodes"]),
        ("node_pools:\n" + _pool(", initial_nodes: 3, max_nodes: 2"), ["max_nodes", "initial_nodes"]),
        ("node_pools:\n" + _pool(per_node=0), ["gpus_per_node"]),
        ("node_pools:\n" + _pool(", colour: red"), ["colour"]),
        ("autoscaler:\n  interval_us: -5\n", ["interval_us", ">= 0"]),
        ("autoscaler:\n  analyzer: {kv_cache_threshold: 1.5}\n", ["kv_cache_threshold"]),
        ("autoscaler:\n  analyzer: {scale_down_boundary: 0.9}\n", ["scale_down_boundary", "scale_up_threshold"]),
        ("node_pools:\n" + _pool(", initial_nodes: 1") + _pool(), ["duplicate"]),
        ("node_pools:\n" + _pool(", initial_nodes: 1, max_nodes: 1", per_node=2), ["node_pools", "GPUs"]),
        ("node_pools:\n" + _pool(", initial_nodes: 1, max_nodes: 1", gpu="Z80"), ["Z80"]),
    ],
)
def test_bad_autoscaler_bundles_fail_clearly(blis, tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = blis(
        "run", "--log", "error", "--model", MODEL, "--num-instances", "2", "--policy-config", str(path)
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_the_interval_flag_needs_node_pools(blis):
    code, out, err = blis("run", "--log", "error", "--model", MODEL, "--model-autoscaler-interval-us", "1000000")
    assert code == 2 and "node_pools" in err and len(err.strip().splitlines()) == 1
    code, out, err = blis("run", "--log", "error", "--model", MODEL, "--model-autoscaler-interval-us", "-1")
    assert code == 2 and "--model-autoscaler-interval-us" in err


def test_a_second_gpu_type_gets_its_own_step_times_and_a_speed_against_the_fleet(tmp_path):
    """A node pool of A100-80s beside the H100 fleet: new A100 instances run the defaults file's
    A100 coefficients, and their speed is relative to the H100s (slower: below 1)."""
    extra = "  - {name: a100, gpu_type: A100-80, gpus_per_node: 8, gpu_memory_gib: 80, max_nodes: 1}\n"
    path = bundle(tmp_path)
    text = open(path).read().replace("instance_lifecycle:", extra + "instance_lifecycle:")
    open(path, "w").write(text)
    config = resolve(opts(path)).config
    (((gpu, tp), cls),) = config.scaling_classes
    assert (gpu, tp) == ("A100-80", 2) and cls.name == "A100-80/tp2"
    assert 0 < cls.speed < 1
    assert config.scaling_class("H100", 2) == config.instance_class(0)
