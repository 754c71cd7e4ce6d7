"""The loop, end to end on this machine: ``blis serve`` on localhost, ``blis observe`` records a
spec workload against it, ``blis calibrate`` compares the trace with the same configuration.

This is the integration test of the real-mode client against a real HTTP server: every
process is a separate ``python -m blis_gym`` command. The server is stopped (its whole
process group) even when the test fails. Deselect with ``-m 'not server'``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="needs the serve extra (pip install 'blis-gym[serve]')")
pytest.importorskip("starlette", reason="needs the serve extra (pip install 'blis-gym[serve]')")

pytestmark = pytest.mark.timeout(240)

MODEL = "codellama/codellama-34b-instruct-hf"
CLUSTER = ["--model", MODEL, "--num-instances", "2", "--routing-policy", "least-loaded", "--log", "error"]
# Two clients, one streaming, with prompts long enough that TTFT is a few hundred milliseconds
# of simulated prefill on a 34B model: the millisecond or so that Python's HTTP stack adds to
# every request (llama-3.1-8b's 50 ms TTFTs show it as 4-5% MAPE) stays well below the bound.
SPEC = """
version: "1"
seed: 11
aggregate_rate: 3
num_requests: 60
clients:
  - id: chat
    slo_class: interactive
    rate_fraction: 0.6
    streaming: true
    arrival: {process: poisson}
    input_distribution: {type: gaussian, params: {mean: 1500, std_dev: 400, min: 400, max: 3000}}
    output_distribution: {type: gaussian, params: {mean: 60, std_dev: 20, min: 10, max: 120}}
  - id: batch
    slo_class: batch
    rate_fraction: 0.4
    streaming: false
    arrival: {process: poisson}
    input_distribution: {type: gaussian, params: {mean: 2500, std_dev: 500, min: 800, max: 4000}}
    output_distribution: {type: gaussian, params: {mean: 40, std_dev: 10, min: 5, max: 80}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blis(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blis_gym", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def server():
    """``blis serve`` on 127.0.0.1 (its own process group); its URL once /health answers."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "blis_gym", "serve", "--port", str(port), *CLUSTER],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"blis serve exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("blis serve did not answer /health within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        assert proc.poll() is not None, "blis serve is still running"


def test_serve_observe_calibrate(server, tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, "utf-8")
    obs = blis(
        "observe",
        "--url",
        server,
        "--model",
        MODEL,
        "--out",
        str(tmp_path / "obs"),
        "--no-progress",
        "--",
        "--workload-spec",
        str(spec),
        timeout=150,
    )
    assert obs.returncode == 0, obs.stderr[-3000:]
    rows = (tmp_path / "obs" / "trace_data.csv").read_text().splitlines()[1:]
    assert len(rows) == 60 and all(",ok," in r for r in rows), obs.stderr[-2000:]
    report_path = tmp_path / "calibration.json"
    cal = blis("calibrate", str(tmp_path / "obs"), "--out", str(report_path), "--", *CLUSTER, timeout=150)
    assert cal.returncode == 0, cal.stderr[-3000:]
    report = json.loads(report_path.read_text())
    figures = {m: (report["metrics"][m]["mape"], report["metrics"][m]["pearson_r"]) for m in ("ttft", "e2e")}
    print(cal.stdout)
    for metric, (mape, r) in figures.items():
        assert mape < 0.05, f"{metric} MAPE {mape:.3%} (report: {figures})"
        assert r > 0.95, f"{metric} Pearson r {r:.4f} (report: {figures})"
