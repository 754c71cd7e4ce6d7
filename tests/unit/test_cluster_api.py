"""The pausable decision loop: an outside agent answers admission and routing decisions."""

from __future__ import annotations

import pytest
from testkit.sim import config, workload

from blis_gym.cluster.simulator import ClusterSimulator
from blis_gym.policies import ADMISSION, ROUTING
from blis_gym.report.render import stdout_text


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


def test_kv_signals_go_stale_but_queue_signals_do_not():
    """With a refresh interval, KV fields hold their last reading; queue and batch stay live."""
    interval = 200_000
    sim = ClusterSimulator(
        config(num_instances=2, snapshot_refresh_interval=interval),
        workload(rate=50, n=60),
        admission=ADMISSION.make("always-admit"),
    )
    last_kv = [None, None]
    refreshed_at = [0, 0]
    stale_seen = 0
    while (d := sim.advance()) is not None:
        for i, s in enumerate(d.state.snapshots):
            inst = sim.instances[i]
            assert s.queue_depth == len(inst.waitq) and s.batch_size == len(inst.running)
            live = inst.kv.used / inst.kv.total
            if d.time - refreshed_at[i] >= interval or last_kv[i] is None:
                assert s.kv_utilization == live
                refreshed_at[i] = d.time
            else:
                assert s.kv_utilization == last_kv[i]
                stale_seen += s.kv_utilization != live
            last_kv[i] = s.kv_utilization
        sim.route(d, d.request.index % 2)
    assert stale_seen > 0  # the stale path was exercised


def test_outside_decisions_are_traced_with_load_based_regret():
    cfg = config(num_instances=3, trace_level="decisions", counterfactual_k=2)
    sim = ClusterSimulator(cfg, workload(rate=1e6, n=4), admission=ADMISSION.make("always-admit"))
    while (d := sim.advance()) is not None:
        sim.route(d, 0)  # pile everything onto instance 0
    trace = sim.result().trace
    assert len(trace.admissions) == 4 and all(a.admitted for a in trace.admissions)
    assert [r.chosen_instance for r in trace.routings] == ["instance_0"] * 4
    # Loads seen by each decision: instance 0 holds 0, 1, 2, 3 pending requests; the others none.
    assert [r.regret for r in trace.routings] == [0.0, 1.0, 2.0, 3.0]
    assert [c.instance_id for c in trace.routings[1].candidates] == ["instance_1", "instance_2"]


def test_no_trace_unless_asked():
    result = ClusterSimulator.from_config(config(num_instances=2), workload(n=5)).run()
    assert result.trace is None
