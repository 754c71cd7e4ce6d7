"""The lookahead routing oracle: it is its rollout policy when there is nothing to look at,
picks the clearly better instance when there is, and beats every heuristic on a busy cluster."""

from __future__ import annotations

import pytest
from testkit import metric_blocks
from testkit.sim import config

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.engine.request import Request
from blis_gym.errors import ConfigError
from blis_gym.plan import RunOptions, resolve, simulate
from blis_gym.policies import ADMISSION, ROUTING
from blis_gym.policies.lookahead import LookaheadConfig

MODEL = "meta-llama/llama-3.1-8b-instruct"
BUSY = dict(
    model=MODEL,
    num_instances=4,
    rate=500.0,
    num_requests=120,
    prefix_tokens=256,
    prompt_tokens=256,
    prompt_tokens_stdev=384,
    prompt_tokens_min=16,
    prompt_tokens_max=4096,
    output_tokens=64,
    output_tokens_stdev=128,
    output_tokens_min=1,
    output_tokens_max=1024,
    log="error",
)


def cluster(routing: str, **kw) -> dict:
    result = simulate(resolve(RunOptions(**{**BUSY, "routing_policy": routing, **kw})))
    a = result.aggregate
    return {"ttft": dict(a.ttfts), "e2e": dict(a.e2es), "completed": a.completed}


def test_is_not_a_blis_heuristic_but_an_oracle():
    assert "lookahead" not in ROUTING.names()
    assert ROUTING.oracles() == ["lookahead"] and "lookahead" in ROUTING.all_names()


@pytest.mark.parametrize("rollout", ["least-loaded", "weighted", "round-robin"])
def test_with_a_horizon_of_zero_it_is_its_rollout_policy(rollout):
    assert cluster("lookahead", lookahead_rollout=rollout, lookahead_horizon="0") == cluster(rollout)


def test_with_one_instance_it_is_its_rollout_policy():
    one = dict(num_instances=1, num_requests=40)
    assert cluster("lookahead", **one) == cluster("weighted", **one)


def queued_on_instance_zero():
    """Two instances, eight long requests routed to instance 0; the ninth's decision is due."""
    reqs = [Request(f"request_{i}", i, i, list(range(i * 1000, i * 1000 + 1500)), list(range(200))) for i in range(9)]
    sim = ClusterSimulator(config(num_instances=2), reqs, admission=ADMISSION.make("always-admit"), routing=None)
    for _ in range(8):
        d = sim.advance()
        sim.route(d, 0)
    return sim, sim.advance()


def test_picks_the_clearly_better_instance():
    """Instance 0 holds a long queue; the rollout policy (always-busiest) would add to it."""
    sim, d = queued_on_instance_zero()
    oracle = ROUTING.make("lookahead", lookahead=LookaheadConfig(rollout="always-busiest"))
    oracle.bind_simulator(sim)
    choice = oracle.route(d.request, d.state)
    assert oracle.rollout.route(d.request, d.state).target == 0
    assert choice.target == 1 and choice.scores[1] > choice.scores[0]
    sim.route(d, choice.target)  # the oracle's forks left the run as it was
    while (d := sim.advance()) is not None:
        sim.route(d, 0)
    assert sim.result().aggregate.completed == 9


def test_a_margin_keeps_the_rollout_pick_unless_another_saves_more():
    """The oracle leaves the rollout policy's pick only for a saving above the margin: just
    below the saving it moves, at the saving it stays."""
    sim, d = queued_on_instance_zero()

    def choose(margin: int):
        oracle = ROUTING.make("lookahead", lookahead=LookaheadConfig(rollout="always-busiest", margin=margin))
        oracle.bind_simulator(sim)
        return oracle.route(d.request, d.state)

    free = choose(0)
    saving = int(free.scores[1] - free.scores[0])  # scores are minus the costs
    assert free.target == 1 and saving > 0
    assert choose(saving - 1).target == 1
    assert choose(saving).target == 0
    with pytest.raises(ConfigError, match="--lookahead-margin"):
        LookaheadConfig(margin=-1)


def test_a_huge_margin_is_the_rollout_policy_and_none_the_full_oracle():
    assert cluster("lookahead", lookahead_margin=1e9) == cluster("weighted")
    assert cluster("lookahead", lookahead_margin=0.0) == cluster("lookahead")


def test_beats_every_heuristic_on_a_busy_cluster():
    oracle = cluster("lookahead")
    assert oracle["completed"] == BUSY["num_requests"]
    mean = sum(oracle["ttft"].values()) / len(oracle["ttft"])
    for name in ROUTING.names():
        other = cluster(name)
        assert mean < sum(other["ttft"].values()) / len(other["ttft"]), name


def test_candidates_prune_the_forks_without_changing_the_extremes():
    """All candidates is the full oracle; one candidate (the rollout's own pick) is the rollout."""
    assert cluster("lookahead", lookahead_candidates=4) == cluster("lookahead")
    assert cluster("lookahead", lookahead_candidates=1) == cluster("weighted")
    two = cluster("lookahead", lookahead_candidates=2)
    assert two["completed"] == BUSY["num_requests"] and two != cluster("weighted")


def test_pruned_candidates_skip_the_worst_ranked_and_keep_the_chosen_one():
    cfg = config(num_instances=3)
    reqs = [Request(f"request_{i}", i, i, list(range(i * 1000, i * 1000 + 600)), list(range(50))) for i in range(7)]
    sim = ClusterSimulator(cfg, reqs, admission=ADMISSION.make("always-admit"), routing=None)
    for i in range(6):  # loads 3, 2, 1
        d = sim.advance()
        sim.route(d, [0, 0, 0, 1, 1, 2][i])
    d = sim.advance()
    oracle = ROUTING.make("lookahead", lookahead=LookaheadConfig(rollout="least-loaded", candidates=2))
    oracle.bind_simulator(sim)
    assert oracle.candidates(d.request, d.state) == [1, 2]  # least effective load first
    costs = oracle.candidate_costs(d.request, d.state, also=0)  # a critic pricing a choice of 0
    assert all(c is not None for c in costs)
    assert oracle.candidate_costs(d.request, d.state)[0] is None


def test_time_in_system_objective_and_future_arrivals_run():
    for kw in (
        dict(lookahead_objective="time-in-system"),
        dict(lookahead_future=True, num_requests=40),
        dict(lookahead_horizon="0.05"),
    ):
        assert cluster("lookahead", **kw)["completed"] > 0


def test_rollouts_cut_by_a_horizon_stay_quiet(caplog):
    """A fork stopped at its horizon leaves requests in flight on purpose: no warning per fork."""
    with caplog.at_level("WARNING", logger="blis_gym"):
        assert (
            cluster("lookahead", lookahead_future=True, lookahead_horizon="0.02", num_requests=60, log="warn")[
                "completed"
            ]
            == 60
        )
    assert not [r for r in caplog.records if "never reached its queue" in r.getMessage()]


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--lookahead-rollout", "lookahead", ["--lookahead-rollout", "lookahead"]),
        ("--lookahead-rollout", "nope", ["--lookahead-rollout", "nope"]),
        ("--lookahead-horizon", "-1", ["--lookahead-horizon", "'end'"]),
        ("--lookahead-horizon", "soon", ["--lookahead-horizon"]),
        ("--lookahead-objective", "tpot", ["--lookahead-objective", "ttft"]),
        ("--lookahead-candidates", "-1", ["--lookahead-candidates"]),
        ("--lookahead-margin", "-5", ["--lookahead-margin", ">= 0"]),
        ("--lookahead-margin", "nan", ["--lookahead-margin", ">= 0"]),
    ],
)
def test_bad_lookahead_flags_fail_clearly(blis, flag, value, words):
    code, out, err = blis("run", "--model", MODEL, "--routing-policy", "lookahead", flag, value, "--log", "error")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    for w in words:
        assert w in err


def test_cli_prints_its_metrics(blis):
    code, out, err = blis(
        "run",
        "--model",
        MODEL,
        "--num-instances",
        "2",
        "--rate",
        "200",
        "--num-requests",
        "30",
        "--routing-policy",
        "lookahead",
        "--log",
        "error",
    )
    assert code == 0, err
    assert metric_blocks(out)[-1]["completed_requests"] == 30


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError):
        LookaheadConfig(horizon=-1)


def test_the_oracles_forks_leave_no_cyclic_garbage():
    """Each rollout's fork is freed as soon as it is priced: the run pauses the cyclic collector
    (gcpause), so a fork kept alive by a reference cycle would stay until the run ends."""
    import gc

    plan = resolve(RunOptions(**{**BUSY, "num_requests": 30, "routing_policy": "lookahead"}))
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        simulate(plan)
        gc.collect()
        sims = sum(1 for o in gc.garbage if type(o) is ClusterSimulator)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert sims <= 1  # the top-level run's own simulator (its oracle refers back to it), no fork


def _peak_rss_kib(args: list[str]) -> float:
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "blis_gym", "run", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    return usage.ru_maxrss


def test_the_oracle_on_a_long_prompt_window_stays_within_three_times_the_plain_runs_memory():
    """A window of Mooncake's conversation trace (prompts of 1k to 100k tokens), five times as
    fast on four instances: the oracle's peak memory is at most 3x round-robin's (forks that
    piled up made it 22x on a window of 133 requests)."""
    window = [
        "--workload",
        "traces",
        "--workload-traces-filepath",
        "mooncake-conversation",
        "--trace-start",
        "600",
        "--trace-duration",
        "20",
        "--trace-speedup",
        "5",
    ]
    flags = ["--model", MODEL, "--num-instances", "4", "--log", "error", *window]
    plain = _peak_rss_kib([*flags, "--routing-policy", "round-robin"])
    oracle = _peak_rss_kib([*flags, "--routing-policy", "lookahead"])
    assert oracle <= 3 * plain, (oracle, plain)
