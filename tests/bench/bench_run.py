#!/usr/bin/env python
"""Wall-time and peak-memory benchmark for ``blis run`` (not a pytest test).

Runs a fixed set of CLI workloads several times each, every run in a fresh
child process (``python -m blis_gym run ... --log error``), and reports the
median / minimum wall time and the peak resident set size of the child.

Optionally runs the same flags on a reference BLIS binary (the Go original)
and prints our/reference ratios, plus a check that both print the same
cluster metrics JSON.

Usage::

    python tests/bench/bench_run.py                      # ours only, 3 repeats
    python tests/bench/bench_run.py --repeat 5 --json bench.json
    python tests/bench/bench_run.py --reference /path/to/blis \\
        --reference-cwd /path/to/blis/src                # + reference comparison

The reference is entirely optional; nothing here assumes it exists.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

MODEL = "meta-llama/llama-3.1-8b-instruct"
FIXTURES = REPO_ROOT / "tests" / "data" / "fixtures"
ROOFLINE = [
    "--model-config-folder",
    str(FIXTURES / "model_configs" / "llama-3.1-8b-instruct"),
    "--hardware-config",
    str(FIXTURES / "blis_hardware_config.json"),
    "--hardware",
    "H100",
]

WORKLOADS: dict[str, list[str]] = {
    "default-2000": [
        "--model",
        MODEL,
        "--num-requests",
        "2000",
        "--rate",
        "20",
    ],
    "4inst-rate5000": [
        "--model",
        MODEL,
        "--num-instances",
        "4",
        "--rate",
        "5000",
        "--num-requests",
        "1000",
    ],
    # The same two runs with decision tracing and top-5 counterfactuals on.
    "default-2000-traced": [
        "--model",
        MODEL,
        "--num-requests",
        "2000",
        "--rate",
        "20",
        "--trace-level",
        "decisions",
        "--counterfactual-k",
        "5",
        "--summarize-trace",
    ],
    "4inst-rate5000-traced": [
        "--model",
        MODEL,
        "--num-instances",
        "4",
        "--rate",
        "5000",
        "--num-requests",
        "1000",
        "--trace-level",
        "decisions",
        "--counterfactual-k",
        "5",
        "--summarize-trace",
    ],
    # Weighted routing with the default scorer profile (prefix index included), traced.
    "4inst-weighted-traced": [
        "--model",
        MODEL,
        "--num-instances",
        "4",
        "--rate",
        "5000",
        "--num-requests",
        "1000",
        "--routing-policy",
        "weighted",
        "--prefix-tokens",
        "256",
        "--trace-level",
        "decisions",
        "--counterfactual-k",
        "5",
        "--summarize-trace",
    ],
    # Roofline step times (zero coefficients, a config folder and a hardware file).
    "roofline-2000": [
        "--model",
        MODEL,
        "--num-requests",
        "2000",
        "--rate",
        "20",
        *ROOFLINE,
        "--tp",
        "1",
    ],
    "roofline-4inst": [
        "--model",
        MODEL,
        "--num-instances",
        "4",
        "--rate",
        "5000",
        "--num-requests",
        "1000",
        *ROOFLINE,
        "--tp",
        "2",
    ],
    # A CPU KV tier that offloads (about 2500 blocks) and reloads (about 900), and the same run
    # single-tier: the tier's cost. (BLIS's block leak livelocks both runs.)
    "tiered-4inst": [
        "--model",
        MODEL,
        "--num-instances",
        "4",
        "--rate",
        "40",
        "--num-requests",
        "3000",
        "--prefix-tokens",
        "512",
        "--prompt-tokens",
        "256",
        "--output-tokens",
        "256",
        "--total-kv-blocks",
        "1200",
        "--kv-cpu-blocks",
        "400",
        "--kv-offload-threshold",
        "0.5",
    ],
    "tiered-4inst-single": [
        "--model",
        MODEL,
        "--num-instances",
        "4",
        "--rate",
        "40",
        "--num-requests",
        "3000",
        "--prefix-tokens",
        "512",
        "--prompt-tokens",
        "256",
        "--output-tokens",
        "256",
        "--total-kv-blocks",
        "1200",
        "--kv-cpu-blocks",
        "0",
        "--kv-offload-threshold",
        "0.5",
    ],
}

METRICS_HEADER = "=== Simulation Metrics ==="
REL_TOL = 1e-9


# --------------------------------------------------------------------------- #
# Running one child and measuring it
# --------------------------------------------------------------------------- #


@dataclass
class RunResult:
    wall_s: float
    peak_rss_kib: float | None
    returncode: int
    stdout: str
    stderr: str


def _maxrss_to_kib(ru_maxrss: int) -> float:
    # Linux reports KiB, macOS reports bytes.
    if sys.platform == "darwin":
        return ru_maxrss / 1024.0
    return float(ru_maxrss)


def run_child(argv: list[str], cwd: Path, timeout: float | None) -> RunResult:
    """Run ``argv`` and return wall time, peak RSS and output.

    Output goes to temporary files (not pipes) so the child can be reaped
    with ``os.wait4``, which yields the rusage -- including ``ru_maxrss`` --
    of exactly that child.
    """
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=str(cwd), stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL)
        peak: float | None = None
        if hasattr(os, "wait4"):
            killer = None
            if timeout is not None:
                killer = threading.Timer(timeout, proc.kill)
                killer.daemon = True
                killer.start()
            try:
                _, status, ru = os.wait4(proc.pid, 0)
                rc = os.waitstatus_to_exitcode(status)
                proc.returncode = rc  # already reaped; keep Popen from waiting again
                peak = _maxrss_to_kib(ru.ru_maxrss)
            except ChildProcessError:  # reaped by the timeout's kill() race
                rc = proc.returncode if proc.returncode is not None else -9
            finally:
                if killer is not None:
                    killer.cancel()
            wall = time.perf_counter() - t0
        else:  # pragma: no cover - non-POSIX fallback, no memory figure
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            wall = time.perf_counter() - t0
        out_f.seek(0)
        err_f.seek(0)
        stdout = out_f.read().decode("utf-8", "replace")
        stderr = err_f.read().decode("utf-8", "replace")
    return RunResult(wall, peak, rc, stdout, stderr)


# --------------------------------------------------------------------------- #
# Cluster metrics extraction / comparison
# --------------------------------------------------------------------------- #


def extract_cluster_metrics(stdout: str) -> dict[str, Any] | None:
    """Return the JSON object of the last metrics block with instance_id == cluster."""
    decoder = json.JSONDecoder()
    found = None
    pos = 0
    while True:
        idx = stdout.find(METRICS_HEADER, pos)
        if idx < 0:
            break
        pos = idx + len(METRICS_HEADER)
        start = stdout.find("{", pos)
        if start < 0:
            break
        try:
            obj, _ = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("instance_id") == "cluster":
            found = obj
    return found


def _num_equal(a: float, b: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def diff_metrics(ours: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Keys whose values differ (numbers: relative tolerance 1e-9; else exact)."""
    diffs = []
    for key in sorted(set(ours) | set(ref)):
        if key not in ours:
            diffs.append(f"{key}: missing in ours (ref={ref[key]!r})")
            continue
        if key not in ref:
            diffs.append(f"{key}: missing in reference (ours={ours[key]!r})")
            continue
        a, b = ours[key], ref[key]
        if _is_num(a) and _is_num(b):
            same = _num_equal(a, b)
        else:
            same = a == b
        if not same:
            diffs.append(f"{key}: ours={a!r} ref={b!r}")
    return diffs


# --------------------------------------------------------------------------- #
# Benchmark driver
# --------------------------------------------------------------------------- #


@dataclass
class SideStats:
    walls: list[float] = field(default_factory=list)
    peaks_kib: list[float] = field(default_factory=list)
    failures: int = 0
    last_stdout: str = ""
    last_error: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "runs": len(self.walls),
            "failures": self.failures,
            "wall_s": list(self.walls),
            "wall_median_s": statistics.median(self.walls) if self.walls else None,
            "wall_min_s": min(self.walls) if self.walls else None,
            "peak_rss_kib": list(self.peaks_kib),
            "peak_rss_max_mib": (max(self.peaks_kib) / 1024.0) if self.peaks_kib else None,
        }


def measure(argv: list[str], cwd: Path, repeat: int, timeout: float | None, label: str, verbose: bool) -> SideStats:
    st = SideStats()
    for i in range(repeat):
        r = run_child(argv, cwd, timeout)
        if r.returncode != 0:
            st.failures += 1
            st.last_error = (r.stderr or r.stdout)[-2000:]
            if verbose:
                print(f"  [{label}] run {i + 1}: FAILED rc={r.returncode}", file=sys.stderr)
            continue
        st.walls.append(r.wall_s)
        if r.peak_rss_kib is not None:
            st.peaks_kib.append(r.peak_rss_kib)
        st.last_stdout = r.stdout
        if verbose:
            mem = f"{r.peak_rss_kib / 1024:.1f} MiB" if r.peak_rss_kib is not None else "n/a"
            print(f"  [{label}] run {i + 1}: {r.wall_s:.3f}s, peak {mem}", file=sys.stderr)
    return st


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def bench_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per workload (default 3)")
    ap.add_argument("--reference", metavar="BIN", help="optional reference `blis` binary to compare against")
    ap.add_argument(
        "--reference-cwd", metavar="DIR", help="working directory for the reference (where its defaults.yaml is)"
    )
    ap.add_argument("--json", metavar="OUT", help="write all figures to this JSON file")
    ap.add_argument(
        "--workload",
        action="append",
        choices=sorted(WORKLOADS),
        help="run only this workload (repeatable; default all)",
    )
    ap.add_argument("--timeout", type=float, default=600.0, help="per-run timeout in seconds (default 600)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-run progress lines")
    args = ap.parse_args(argv)

    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    ref_bin = Path(args.reference).resolve() if args.reference else None
    ref_cwd = Path(args.reference_cwd).resolve() if args.reference_cwd else None
    if ref_bin is not None:
        if not ref_bin.is_file():
            ap.error(f"reference binary not found: {ref_bin}")
        if ref_cwd is None:
            ref_cwd = ref_bin.parent

    names = args.workload or list(WORKLOADS)
    verbose = not args.quiet
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "repeat": args.repeat,
        "reference": str(ref_bin) if ref_bin else None,
        "workloads": {},
    }
    exit_code = 0

    for name in names:
        flags = WORKLOADS[name] + ["--log", "error"]
        if verbose:
            print(f"{name}: blis run {' '.join(flags)}", file=sys.stderr)
        ours = measure(
            [sys.executable, "-m", "blis_gym", "run", *flags], REPO_ROOT, args.repeat, args.timeout, "ours", verbose
        )
        entry: dict[str, Any] = {"flags": flags, "ours": ours.summary()}
        if ours.failures:
            exit_code = 1
            entry["ours"]["last_error"] = ours.last_error
        if ref_bin is not None:
            ref = measure([str(ref_bin), "run", *flags], ref_cwd, args.repeat, args.timeout, "ref", verbose)
            entry["reference"] = ref.summary()
            if ref.failures:
                entry["reference"]["last_error"] = ref.last_error
            if not compare_with_reference(entry, ours, ref):
                exit_code = 1
        results["workloads"][name] = entry

    _print_table(results, ref_bin is not None)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return exit_code


def compare_with_reference(entry: dict[str, Any], ours, ref) -> bool:
    """Fill ``entry`` with ours/reference ratios and the cluster-metrics comparison of two
    measurements (``entry["ours"]`` and ``entry["reference"]`` already summarized); returns
    whether the metrics agree."""
    o, r = entry["ours"], entry["reference"]
    entry["ratio_wall_median"] = _ratio(o["wall_median_s"], r["wall_median_s"])
    entry["ratio_wall_min"] = _ratio(o["wall_min_s"], r["wall_min_s"])
    entry["ratio_peak_rss"] = _ratio(o["peak_rss_max_mib"], r["peak_rss_max_mib"])
    om = extract_cluster_metrics(ours.last_stdout) if ours.walls else None
    rm = extract_cluster_metrics(ref.last_stdout) if ref.walls else None
    if om is None or rm is None:
        entry["metrics_agree"] = None
        entry["metrics_diffs"] = ["cluster metrics block not found in " + ("ours" if om is None else "reference")]
        return False
    d = diff_metrics(om, rm)
    entry["metrics_agree"] = not d
    entry["metrics_diffs"] = d
    return not d


def _print_table(results: dict[str, Any], with_ref: bool) -> None:
    print()
    print(f"repeat={results['repeat']}  python {results['python']}")
    w = max([16] + [len(n) for n in results["workloads"]])
    hdr = f"{'workload':<{w}} {'side':<5} {'median s':>9} {'min s':>8} {'peak MiB':>9}"
    print(hdr)
    print("-" * len(hdr))
    for name, e in results["workloads"].items():
        sides = [("ours", e["ours"])]
        if with_ref:
            sides.append(("ref", e["reference"]))
        for side, s in sides:
            fail = f"  ({s['failures']} failed)" if s["failures"] else ""
            print(
                f"{name:<{w}} {side:<5} {_fmt(s['wall_median_s'], '9.3f')} "
                f"{_fmt(s['wall_min_s'], '8.3f')} {_fmt(s['peak_rss_max_mib'], '9.1f')}{fail}"
            )
        if with_ref:
            print(
                f"{name:<{w}} {'ratio':<5} {_fmt(e['ratio_wall_median'], '9.2f')} "
                f"{_fmt(e['ratio_wall_min'], '8.2f')} {_fmt(e['ratio_peak_rss'], '9.2f')}"
                "   (ours/ref)"
            )
    if with_ref:
        print()
        for name, e in results["workloads"].items():
            if e.get("metrics_agree"):
                print(f"{name}: metrics agree")
            else:
                print(f"{name}: metrics DIFFER:")
                for d in e.get("metrics_diffs", []):
                    print(f"    {d}")
    for name, e in results["workloads"].items():
        for side in ("ours", "reference"):
            err = e.get(side, {}).get("last_error")
            if err:
                print(f"\n{name} [{side}] last failure output:\n{err}")


if __name__ == "__main__":
    sys.exit(bench_main())
