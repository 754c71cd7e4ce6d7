"""Sweep files and result tables for the sweep tests (serial and on Ray)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from blis_gym.sweep.table import PARQUET

SMALL = """
base:
  model: meta-llama/llama-3.1-8b-instruct
  num_requests: 40
  rate: 20
axes:
  - routing_policy: [round-robin, least-loaded]
  - num_instances: [1, 2]
"""


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def table(out: Path) -> list[dict]:
    import pyarrow.parquet as pq  # the distributed extra: tests that read tables skip without it

    return pq.read_table(out / PARQUET).to_pylist()


def fresh_cli(*args: str, timeout: float = 60) -> tuple[int, str]:
    """``blis ARGS...`` in a new process (this one may hold the tests' shared Ray): (code, stderr)."""
    done = subprocess.run([sys.executable, "-m", "blis_gym", *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stderr
