"""A real two-node Ray cluster on this machine runs a sweep through ``--address``.

A head and one worker node (``ray start --head`` / ``ray start --address``, one CPU each)
run in a network namespace of their own that holds only a loopback interface, so nothing
they open is reachable from outside this machine (Ray listens on every interface of its
namespace, and there finds only 127.0.0.1 to advertise). Without permission to make a
namespace (not root, no ``ip``), they run in this machine's own. Both nodes are killed, with every process
they started, even when the test fails.

Deselect with ``-m 'not multinode'``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="needs the distributed extra (pip install 'blis-gym[distributed]')")
pq = pytest.importorskip("pyarrow.parquet", reason="needs the distributed extra (pyarrow)")

pytestmark = pytest.mark.timeout(120)

HEAD_PORT = 6390
WAIT_FOR_NODES = """
import logging, sys, time, ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
deadline = time.monotonic() + 45
while time.monotonic() < deadline:
    alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    if len(alive) >= 2:
        break
    time.sleep(0.2)
print(" ".join(sorted(alive)))
"""


def _netns() -> str:
    """A fresh network namespace with loopback up, or "" where one cannot be made."""
    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        return ""
    name = f"blis-test-{os.getpid()}-{secrets.token_hex(3)}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True)
    if made.returncode != 0:
        return ""
    subprocess.run([ip, "netns", "exec", name, ip, "link", "set", "lo", "up"], check=True)
    return name


class LocalCluster:
    """Head and worker processes (``ray start --block``), each the leader of its process group."""

    def __init__(self) -> None:
        self.netns = _netns()
        self.tmp = tempfile.mkdtemp(prefix="blisray")  # short: Ray's socket paths have a length limit
        self.address = f"127.0.0.1:{HEAD_PORT}"
        self.env = dict(
            os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16)
        )
        self.procs: list[subprocess.Popen] = []

    def command(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args] if self.netns else args

    def _start(self, args: list[str], log: str) -> None:
        with open(Path(self.tmp) / log, "w") as out:
            self.procs.append(
                subprocess.Popen(
                    self.command(args), stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
                )
            )

    def run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(args), capture_output=True, text=True, env=self.env, timeout=timeout)

    def start(self) -> list[str]:
        """Start both nodes; the ids of the two live nodes."""
        ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
        common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats", "--block"]
        self._start(
            [
                *ray_cli,
                "start",
                "--head",
                f"--port={HEAD_PORT}",
                "--include-dashboard=false",
                f"--temp-dir={self.tmp}",
                *common,
            ],
            "head.log",
        )
        self._start([*ray_cli, "start", f"--address={self.address}", *common], "worker.log")
        found = self.run([sys.executable, "-c", WAIT_FOR_NODES, self.address], timeout=60)
        assert found.returncode == 0, found.stderr[-2000:] + self.logs()
        return found.stdout.split()

    def logs(self) -> str:
        return "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in Path(self.tmp).glob("*.log"))

    def stop(self) -> None:
        """Kill every process the nodes started (their process groups, and in a namespace, everything
        in it: Ray's workers start sessions of their own), then remove the namespace and files."""
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.netns:
            pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout
            for pid in pids.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.netns:
            subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def two_nodes():
    cluster = LocalCluster()
    try:
        yield cluster, cluster.start()
    finally:
        cluster.stop()


def test_a_sweep_on_a_two_node_cluster_runs_on_both_nodes(two_nodes, tmp_path):
    cluster, node_ids = two_nodes
    assert len(node_ids) == 2
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        """
base: {model: meta-llama/llama-3.1-8b-instruct, num_requests: 400, rate: 40}
axes:
  - routing_policy: [round-robin, least-loaded]
  - num_instances: [1, 2, 3]
  - seed: [1, 2]
""",
        "utf-8",
    )
    out = tmp_path / "out"
    done = cluster.run(
        [
            sys.executable,
            "-m",
            "blis_gym",
            "sweep",
            str(spec),
            "--out",
            str(out),
            "--address",
            cluster.address,
            "--no-progress",
        ],
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:] + cluster.logs()
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 12 and all(r["error"] == "" for r in rows)
    assert {r["node"] for r in rows} == set(node_ids), "every point ran on one of the two nodes, and both ran some"
    serial = tmp_path / "serial"
    subprocess.run(
        [sys.executable, "-m", "blis_gym", "sweep", str(spec), "--out", str(serial), "--serial"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    local = pq.read_table(serial / "results.parquet").to_pylist()
    assert [{**r, "node": ""} for r in rows] == [{**r, "node": ""} for r in local]
