"""The pausable decision loop: an outside agent answers admission and routing decisions."""

from __future__ import annotations

import pytest

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.policies import ADMISSION, ROUTING
from blis_gym.report.render import stdout_text
from helpers_sim import config, workload


def _built_in(cfg, n=120):
    return stdout_text(ClusterSimulator.from_config(cfg, workload(rate=60, n=n)).run())


def test_external_round_robin_routing_equals_built_in():
    cfg = config(num_instances=3, admission_latency=500, routing_latency=300)
    sim = ClusterSimulator(cfg, workload(rate=60, n=120), admission=ADMISSION.make("always-admit"))
    decisions = 0
    while (d := sim.advance()) is not None:
        assert d.kind == "routing"
        assert len(d.state.snapshots) == 3 and d.state.clock == d.time == sim.clock
        assert d.request.arrival + 800 == d.time
        sim.route(d, decisions % 3)
        decisions += 1
    assert decisions == 120
    assert stdout_text(sim.result()) == _built_in(cfg)


def test_external_admission_equals_built_in_and_counts_rejections():
    cfg = config(num_instances=2)
    sim = ClusterSimulator(cfg, workload(rate=60, n=120), routing=ROUTING.make("round-robin"))
    while (d := sim.advance()) is not None:
        assert d.kind == "admission"
        sim.admit(d, True)
    assert stdout_text(sim.result()) == _built_in(cfg)

    sim = ClusterSimulator(cfg, workload(rate=60, n=120), routing=ROUTING.make("round-robin"))
    while (d := sim.advance()) is not None:
        sim.admit(d, d.request.index % 2 == 0, "odd ones out")
    result = sim.result()
    assert result.rejected == 60 and result.aggregate.completed == 60
    assert "Rejected Requests: 60" in stdout_text(result)


def test_pending_counts_are_visible_to_same_instant_decisions():
    # Rate 1e6/s spaces arrivals 1 tick apart; queueing takes longer, so routed requests pile up as pending.
    sim = ClusterSimulator(config(num_instances=2), workload(rate=1e6, n=6), admission=ADMISSION.make("always-admit"))
    seen = []
    while (d := sim.advance()) is not None:
        seen.append([s.pending_requests for s in d.state.snapshots])
        sim.route(d, 0)
    assert seen == [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0]]


def test_decision_errors_are_clear():
    sim = ClusterSimulator(config(num_instances=2), workload(n=3), admission=ADMISSION.make("always-admit"))
    d = sim.advance()
    with pytest.raises(RuntimeError, match="pending"):
        sim.advance()
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        sim.route(d, 2)
    with pytest.raises(RuntimeError, match="not admission"):
        sim.admit(d, True)
    sim.route(d, 1)
    with pytest.raises(RuntimeError, match="no such pending"):
        sim.route(d, 1)
    with pytest.raises(RuntimeError, match="needs both"):
        sim.run()
