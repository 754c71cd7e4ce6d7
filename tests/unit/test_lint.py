"""The code passes ruff's lint and is in ruff's format (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from testkit import ROOT

pytest.importorskip("ruff", reason="needs the dev extra (pip install 'blis-gym[dev]')")


@pytest.mark.parametrize(
    "args", [["check", "--no-cache"], ["format", "--check", "--no-cache"]], ids=["check", "format"]
)
def test_ruff(args):
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
