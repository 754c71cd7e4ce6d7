#!/usr/bin/env python
"""Workload-spec benchmark: generation speed and ``blis run --workload-spec`` cost (not a pytest test).

Two measurements on one spec (default ``tests/bench/specs/mixed-4client.yaml``):

1. Generation only: ``generate_spec_requests`` called directly (no CLI) for
   ``--gen-requests`` requests (default 100,000; no horizon), best of
   ``--gen-repeat`` (default 3), all in one child Python so that its
   memory peak stays out of this process (see ``bench_generation``).
   Loading the spec is timed apart; the child's peak RSS is reported.
2. The whole run, in a fresh child per run:
   ``python -m blis_gym run --model meta-llama/llama-3.1-8b-instruct
   --num-instances 4 --workload-spec SPEC --log error``, ``--repeat`` times
   (default 3): median / minimum wall time and peak RSS (``os.wait4``).
   With ``--reference`` the same flags run on a reference BLIS binary; the
   script prints ours/ref ratios and checks that the cluster metrics agree
   (numbers to 1e-9 relative, the rest exactly), as ``bench_run.py`` does.

Targets (from the issue): run wall time at most 0.3x the reference's, peak
RSS at most the reference's, generation of 100,000 requests under 2 s. The
script reports each as met or missed; ``--check-targets`` makes a miss exit 2.

Usage::

    python tests/bench/bench_spec.py                          # ours only
    python tests/bench/bench_spec.py --reference ~/blis-ref/blis \\
        --reference-cwd ~/blis-ref/src \\
        --reference-defaults ~/blis-ref/src/defaults.yaml --ref-repeat 1
    python tests/bench/bench_spec.py --skip-gen --json spec.json

Exit codes: 0 fine, 1 a run failed or the metrics differ, 2 (only with
``--check-targets``) a target was missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import (
    MODEL,
    REPO_ROOT,
    _fmt,
    compare_with_reference,
    measure,
    run_child,
)

DEFAULT_SPEC = Path(__file__).resolve().parent / "specs" / "mixed-4client.yaml"
NUM_INSTANCES = 4
NO_HORIZON = 2**63 - 1

TARGET_WALL_RATIO = 0.3
TARGET_RSS_RATIO = 1.0
TARGET_GEN_S = 2.0
TARGET_GEN_REQUESTS = 100_000


def run_flags(spec: Path) -> list[str]:
    return ["--model", MODEL, "--num-instances", str(NUM_INSTANCES), "--workload-spec", str(spec), "--log", "error"]


def _generation_worker(spec_path: str, n: int, repeat: int) -> None:
    """Child side of :func:`bench_generation`: time in this process, print JSON on stdout."""
    from blis_gym.workload.spec_generator import generate_spec_requests
    from blis_gym.workload.spec_loader import load_workload_spec

    t0 = time.perf_counter()
    spec = load_workload_spec(spec_path)
    load_s = time.perf_counter() - t0
    times: list[float] = []
    produced = 0
    for i in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        reqs = generate_spec_requests(spec, NO_HORIZON, n)
        dt = time.perf_counter() - t0
        produced = len(reqs)
        del reqs  # free before the next round
        times.append(dt)
        print(f"  [gen] run {i + 1}: {produced} requests in {dt:.3f}s", file=sys.stderr, flush=True)
    print(json.dumps({"load_s": load_s, "times_s": times, "produced": produced}))


def bench_generation(spec_path: Path, n: int, repeat: int, timeout: float, verbose: bool) -> dict[str, Any]:
    """Best-of-``repeat`` time of ``generate_spec_requests(spec, no horizon, n)``.

    The timing runs inside one child Python (a direct call, no CLI), not in
    this process: generating 100,000 requests peaks at several GB, and a
    child forked from a large process inherits its peak RSS in ``ru_maxrss``,
    which would spoil the memory figures of the runs that follow.
    """
    r = run_child(
        [sys.executable, str(Path(__file__).resolve()), "--generation-worker", str(spec_path), str(n), str(repeat)],
        REPO_ROOT,
        timeout,
    )
    if verbose and r.stderr.strip():
        print(r.stderr.rstrip(), file=sys.stderr)
    out: dict[str, Any] = {"requests": n}
    if r.returncode != 0:
        out["failed"] = True
        out["last_error"] = (r.stderr or r.stdout)[-2000:]
        return out
    data = json.loads(r.stdout.strip().splitlines()[-1])
    best = min(data["times_s"])
    out.update(
        {
            "produced": data["produced"],
            "load_s": data["load_s"],
            "times_s": data["times_s"],
            "best_s": best,
            "requests_per_s": data["produced"] / best if best > 0 else None,
            "peak_rss_mib": r.peak_rss_kib / 1024.0 if r.peak_rss_kib is not None else None,
        }
    )
    return out


def bench_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--spec", default=str(DEFAULT_SPEC), help="workload spec to run (default tests/bench/specs/mixed-4client.yaml)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of ours (default 3)")
    ap.add_argument("--ref-repeat", type=int, default=None, help="runs of the reference (default: --repeat)")
    ap.add_argument(
        "--gen-requests",
        type=int,
        default=TARGET_GEN_REQUESTS,
        help=f"requests to generate in the generation timing (default {TARGET_GEN_REQUESTS})",
    )
    ap.add_argument("--gen-repeat", type=int, default=3, help="generation timings; the best counts (default 3)")
    ap.add_argument("--skip-gen", action="store_true", help="skip the generation timing")
    ap.add_argument("--skip-run", action="store_true", help="skip the CLI runs")
    ap.add_argument(
        "--reference", metavar="BIN", help="optional reference `blis` binary (or wrapper script) to compare against"
    )
    ap.add_argument(
        "--reference-cwd", metavar="DIR", help="working directory for the reference (default: the binary's folder)"
    )
    ap.add_argument(
        "--reference-defaults",
        metavar="FILE",
        help="pass `--defaults-filepath FILE` to the reference (not needed with a "
        "wrapper that adds it, nor when DIR holds defaults.yaml)",
    )
    ap.add_argument("--json", metavar="OUT", help="write all figures to this JSON file")
    ap.add_argument("--timeout", type=float, default=900.0, help="per-run timeout in seconds (default 900)")
    ap.add_argument("--check-targets", action="store_true", help="exit 2 if a speed or memory target is missed")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-run progress lines")
    args = ap.parse_args(argv)

    if args.repeat < 1 or args.gen_repeat < 1 or (args.ref_repeat is not None and args.ref_repeat < 1):
        ap.error("repeat counts must be >= 1")
    if args.gen_requests < 1:
        ap.error("--gen-requests must be >= 1")
    spec = Path(args.spec).expanduser().resolve()  # absolute: the reference runs elsewhere
    if not spec.is_file():
        ap.error(f"spec not found: {spec}")
    ref_bin = Path(args.reference).expanduser().resolve() if args.reference else None
    ref_cwd = Path(args.reference_cwd).expanduser().resolve() if args.reference_cwd else None
    ref_defaults = Path(args.reference_defaults).expanduser().resolve() if args.reference_defaults else None
    if ref_bin is not None:
        if not ref_bin.is_file():
            ap.error(f"reference binary not found: {ref_bin}")
        if ref_cwd is None:
            ref_cwd = ref_bin.parent
        if ref_defaults is not None and not ref_defaults.is_file():
            ap.error(f"reference defaults not found: {ref_defaults}")
    elif ref_cwd is not None or ref_defaults is not None:
        ap.error("--reference-cwd / --reference-defaults need --reference")
    ref_repeat = args.ref_repeat if args.ref_repeat is not None else args.repeat
    verbose = not args.quiet

    flags = run_flags(spec)
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "spec": str(spec),
        "flags": flags,
        "repeat": args.repeat,
        "ref_repeat": ref_repeat if ref_bin else None,
        "reference": str(ref_bin) if ref_bin else None,
        "targets": {
            "wall_ratio_max": TARGET_WALL_RATIO,
            "rss_ratio_max": TARGET_RSS_RATIO,
            "gen_s_max": TARGET_GEN_S,
            "gen_requests": TARGET_GEN_REQUESTS,
        },
    }
    exit_code = 0
    missed: list[str] = []

    if not args.skip_gen:
        if verbose:
            print(f"generation: {args.gen_requests} requests from {spec.name}", file=sys.stderr)
        gen = bench_generation(spec, args.gen_requests, args.gen_repeat, args.timeout, verbose)
        results["generation"] = gen
        if gen.get("failed"):
            exit_code = 1
        elif args.gen_requests == TARGET_GEN_REQUESTS:
            gen["target_met"] = gen["best_s"] < TARGET_GEN_S
            if not gen["target_met"]:
                missed.append(f"generation {gen['best_s']:.2f}s >= {TARGET_GEN_S}s")

    if not args.skip_run:
        if verbose:
            print(f"run: blis run {' '.join(flags)}", file=sys.stderr)
        ours = measure(
            [sys.executable, "-m", "blis_gym", "run", *flags], REPO_ROOT, args.repeat, args.timeout, "ours", verbose
        )
        run: dict[str, Any] = {"ours": ours.summary()}
        if ours.failures:
            exit_code = 1
            run["ours"]["last_error"] = ours.last_error
        if ref_bin is not None:
            ref_argv = [str(ref_bin), "run", *flags]
            if ref_defaults is not None:
                ref_argv += ["--defaults-filepath", str(ref_defaults)]
            ref = measure(ref_argv, ref_cwd, ref_repeat, args.timeout, "ref", verbose)
            run["reference"] = ref.summary()
            if ref.failures:
                exit_code = 1
                run["reference"]["last_error"] = ref.last_error
            if not compare_with_reference(run, ours, ref):
                exit_code = 1
            wr, mr = run["ratio_wall_median"], run["ratio_peak_rss"]
            run["wall_target_met"] = wr is not None and wr <= TARGET_WALL_RATIO
            run["rss_target_met"] = mr is not None and mr <= TARGET_RSS_RATIO
            if not run["wall_target_met"]:
                missed.append(f"wall ratio {_fmt(wr, '.3f')} > {TARGET_WALL_RATIO}")
            if not run["rss_target_met"]:
                missed.append(f"peak RSS ratio {_fmt(mr, '.3f')} > {TARGET_RSS_RATIO}")
        results["run"] = run

    results["targets_missed"] = missed
    _print_report(results)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if exit_code == 0 and missed and args.check_targets:
        exit_code = 2
    return exit_code


def _cell(x: float | None, spec: str) -> str:
    """``format(x, spec)``, or a dash padded to the same width."""
    width = int(spec.split(".")[0] or 0)
    return _fmt(x, spec) if x is not None else "-".rjust(width)


def _print_report(results: dict[str, Any]) -> None:
    print()
    print(f"spec {results['spec']}  python {results['python']}")
    gen = results.get("generation")
    if gen and gen.get("failed"):
        print(f"generation FAILED:\n{gen['last_error']}")
    elif gen:
        times = ", ".join(f"{t:.3f}" for t in gen["times_s"])
        target = ""
        if "target_met" in gen:
            target = f"   target < {TARGET_GEN_S:g}s: {'met' if gen['target_met'] else 'MISSED'}"
        print(
            f"generation: {gen['produced']} requests, best {gen['best_s']:.3f}s "
            f"({gen['requests_per_s']:,.0f} requests/s; runs {times}; load {gen['load_s']:.3f}s; "
            f"peak {_cell(gen['peak_rss_mib'], '.0f')} MiB){target}"
        )
    run = results.get("run")
    if not run:
        return
    print()
    with_ref = "reference" in run
    hdr = f"{'side':<5} {'runs':>4} {'median s':>9} {'min s':>8} {'peak MiB':>9}"
    print(f"run: {NUM_INSTANCES} instances, {MODEL}")
    print(hdr)
    print("-" * len(hdr))
    sides = [("ours", run["ours"])] + ([("ref", run["reference"])] if with_ref else [])
    for side, s in sides:
        fail = f"  ({s['failures']} failed)" if s["failures"] else ""
        print(
            f"{side:<5} {s['runs']:>4} {_cell(s['wall_median_s'], '9.3f')} "
            f"{_cell(s['wall_min_s'], '8.3f')} {_cell(s['peak_rss_max_mib'], '9.1f')}{fail}"
        )
    if with_ref:
        print(
            f"{'ratio':<5} {'':>4} {_cell(run['ratio_wall_median'], '9.3f')} "
            f"{_cell(run['ratio_wall_min'], '8.3f')} {_cell(run['ratio_peak_rss'], '9.3f')}   (ours/ref)"
        )
        print()
        print(f"wall target (median ratio <= {TARGET_WALL_RATIO}): {'met' if run['wall_target_met'] else 'MISSED'}")
        print(f"memory target (peak RSS ratio <= {TARGET_RSS_RATIO:g}): {'met' if run['rss_target_met'] else 'MISSED'}")
        if run.get("metrics_agree"):
            print("metrics agree")
        else:
            print("metrics DIFFER:")
            for d in run.get("metrics_diffs", []):
                print(f"    {d}")
    for side in ("ours", "reference"):
        err = run.get(side, {}).get("last_error")
        if err:
            print(f"\n[{side}] last failure output:\n{err}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--generation-worker":
        _generation_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    sys.exit(bench_main())
