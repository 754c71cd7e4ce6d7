"""Shared test helpers: run the CLI in-process and parse its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blis_gym.cli.app import main

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
REFERENCE_DATA = ROOT.parent / "shared" / "reference" / "data"


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


@pytest.fixture
def blis(capsys):
    """Run ``blis ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def _run(*args: str):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return _run
