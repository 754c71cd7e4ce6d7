"""``blis sweep`` on Ray: a Ray sweep equals the serial one, SIGINT and rerun, and cluster
addresses that do not answer (the rest of the sweep tests: tests/unit/test_sweep.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from testkit.sweep import SMALL, fresh_cli, table, write

from blis_gym.sweep import load_sweep
from blis_gym.sweep.execute import run_sweep
from blis_gym.sweep.table import JOURNAL, PARQUET, read_journal

pytest.importorskip("pyarrow.parquet", reason="needs the distributed extra (pyarrow)")


def test_unreachable_address_fails_fast_with_exit_2(blis, tmp_path):
    path = write(tmp_path, SMALL)
    started = time.monotonic()
    code, err = fresh_cli(
        "sweep", str(path), "--out", str(tmp_path / "out"), "--address", "127.0.0.1:1", "--timeout", "3"
    )
    assert code == 2 and err.startswith("error: --address 127.0.0.1:1: cannot connect"), err
    assert len(err.strip().splitlines()) == 1
    assert time.monotonic() - started < 15
    assert not (tmp_path / "out").exists()  # nothing written before the cluster answers
    code, _, err = blis("sweep", str(path), "--address", "nohost", "--serial")
    assert code == 2 and "exclude each other" in err
    code, _, err = blis("sweep", str(path), "--address", "no-port-here", "--out", str(tmp_path / "out"))
    assert code == 2 and "expected HOST:PORT" in err
    assert not (tmp_path / "out").exists()


def test_an_address_that_answers_but_is_not_ray_times_out(tmp_path):
    """Something listening that is not a Ray head (here a plain TCP server that never speaks)
    fails after --timeout with one error line, not after Ray's many retries."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        started = time.monotonic()
        code, err = fresh_cli(
            "sweep",
            str(write(tmp_path, SMALL)),
            "--out",
            str(tmp_path / "o"),
            "--address",
            f"127.0.0.1:{port}",
            "--timeout",
            "2",
        )
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[-1] == (
        f"error: --address 127.0.0.1:{port}: no Ray cluster answered within 2 s "
        f"(something listens there, but not a Ray head?)"
    ), err
    assert elapsed < 15
    assert not (tmp_path / "o").exists()


def test_a_process_connected_to_ray_refuses_another_address(tmp_path, ray_local):
    import socket

    from blis_gym.distributed import RaySession
    from blis_gym.errors import ConfigError

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        with pytest.raises(ConfigError, match="already connected to the Ray cluster at"):
            RaySession(f"127.0.0.1:{server.getsockname()[1]}").start()
    finally:
        server.close()


def test_sigint_then_rerun_gives_the_uninterrupted_table(tmp_path, ray_local):
    """Kill a Ray sweep halfway with SIGINT (exit 130, finished points kept), rerun it: the
    table is byte-identical to an uninterrupted sweep's."""
    path = write(
        tmp_path,
        """
base: {model: meta-llama/llama-3.1-8b-instruct, num_requests: 300, rate: 40}
axes:
  - routing_policy: [round-robin, least-loaded, weighted]
  - num_instances: [1, 2, 3, 4]
  - seed: [1, 2]
""",
    )
    spec = load_sweep(path)
    whole = tmp_path / "whole"
    run_sweep(spec, whole)  # in this process, on the shared Ray
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "blis_gym", "sweep", str(path), "--out", str(out), "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            journal = out / JOURNAL
            if journal.is_file() and len(journal.read_text().splitlines()) >= 4:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    done = len(read_journal(out))
    assert 4 <= done < len(spec.points), done
    assert "interrupted: " in err and "run the same command again to finish" in err
    assert not (out / PARQUET).exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(spec.points) - done} run" in rerun.stderr and f"{done} resumed" in rerun.stderr
    assert (out / PARQUET).read_bytes() == (whole / PARQUET).read_bytes()
    assert (out / "results.csv").read_text() == (whole / "results.csv").read_text()


def test_ray_sweep_equals_the_serial_sweep(tmp_path, ray_local, blis):
    path = write(tmp_path, SMALL)
    code, _, err = blis("sweep", str(path), "--out", str(tmp_path / "ray"))
    assert code == 0, err
    run_sweep(load_sweep(path), tmp_path / "serial", serial=True)
    ray_rows, serial_rows = table(tmp_path / "ray"), table(tmp_path / "serial")
    assert ray_rows == serial_rows  # node "local" in both: this machine ran every point
    assert json.loads((tmp_path / "ray" / JOURNAL).read_text().splitlines()[0])["seconds"] > 0
