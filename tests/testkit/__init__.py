"""What the test folders share: the repository's paths, BLIS's reference data (and the skip for
a bare clone), parsing ``blis run`` output, and a twice-trained agent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
FIXTURES = DATA / "fixtures"  # small hand-written files in BLIS's formats, shipped with the repo

# BLIS's own reference files. CI places a read-only copy of shared/ beside the clone; a user who
# clones only this repository has none, so tests that compare against those files skip there.
REFERENCE_DATA = ROOT.parent / "shared" / "reference" / "data"
HAVE_REFERENCE = REFERENCE_DATA.is_dir()
REFERENCE_REASON = (
    f"needs BLIS's reference data in ../shared/reference/data ({REFERENCE_DATA} not found; "
    "CI has it, a bare clone does not)"
)
# Only the folder's absence skips: with the folder present, a missing or changed file fails.
# BLIS_GYM_REQUIRE_REFERENCE=1 turns the skip off, so a CI job whose copy went missing fails
# loudly instead of passing on skips.
requires_reference = pytest.mark.skipif(
    not HAVE_REFERENCE and os.environ.get("BLIS_GYM_REQUIRE_REFERENCE", "") in ("", "0"),
    reason=REFERENCE_REASON,
)


def metric_blocks(stdout: str) -> list[dict]:
    """The JSON objects printed after each '=== Simulation Metrics ===' header."""
    blocks = []
    for part in stdout.split("=== Simulation Metrics ===\n")[1:]:
        end = part.index("\n}") + 2
        blocks.append(json.loads(part[:end]))
    return blocks


def assert_close(actual: dict, expected: dict, rel: float = 1e-9, skip=("simulation_duration_s",)) -> None:
    for key, want in expected.items():
        if key in skip:
            continue
        assert key in actual, f"missing metric {key}"
        got = actual[key]
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            assert got == pytest.approx(want, rel=rel, abs=1e-12), f"{key}: {got} != {want}"
        else:
            assert got == want, f"{key}: {got!r} != {want!r}"


def trained_twice(cfg, tmp_path: Path, *, timesteps: int, seed: int):
    """Train ``cfg`` twice on Routing-v0's default scenario with one seed; both loaded agents,
    after checking their policy weights are identical (training is deterministic for a seed)."""
    import numpy as np

    from blis_gym.agents.model import TrainedAgent
    from blis_gym.agents.train import train

    for run in ("a", "b"):
        train(
            cfg,
            env_id="blis_gym/Routing-v0",
            scenario="default",
            timesteps=timesteps,
            seed=seed,
            out=tmp_path / run,
            progress=False,
            log=lambda _: None,
        )
    a, b = (TrainedAgent.load(tmp_path / r) for r in "ab")
    for pa, pb in zip(a.model.policy.parameters(), b.model.policy.parameters()):
        assert np.array_equal(pa.detach().numpy(), pb.detach().numpy())
    return a, b
