"""Record a differential case from a BLIS build (commit 96a0542f) into tests/data/reference/.

    python tools/record_reference.py NAME [--reference-kv] [--results] -- BLIS-RUN-ARGS...

Arguments starting with ``tests/data/`` are passed to BLIS as absolute paths (they are stored
relative, as the differential test expects); ``{results}`` stands for a results file, and
``--results`` records it too. The case is appended to cases.json (replacing one of the same
name). ``--blis`` points at the reference runner (default ~/blis-ref/blis-run).

``--trace-v2 DIR`` records a trace v2 replay: the case runs ``--workload traces
--workload-traces-filepath DIR`` here, and the reference runs ``--trace-v2 DIR``, a flag of a
harness build of BLIS (not in BLIS's CLI at 96a0542f) that feeds the folder through BLIS's own
``LoadTraceV2`` and ``LoadTraceV2Requests`` where a workload spec's requests would go.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "data" / "reference"


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("--reference-kv", action="store_true")
    p.add_argument("--results", action="store_true")
    p.add_argument("--blis", default=os.path.expanduser("~/blis-ref/blis-run"))
    p.add_argument("--trace-v2", default="")
    opts = p.parse_args(argv[:split])
    args = argv[split + 1 :]
    reference_args = list(args)
    if opts.trace_v2:
        args = [*args, "--workload", "traces", "--workload-traces-filepath", opts.trace_v2]
        reference_args = [*reference_args, "--trace-v2", opts.trace_v2]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        real = [a.replace("{results}", str(results)) for a in reference_args]
        real = [str(ROOT / a) if a.startswith("tests/data/") else a for a in real]
        proc = subprocess.run([opts.blis, "run", *real], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            print(f"BLIS exited {proc.returncode}:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        (REF / f"{opts.name}.stdout").write_text(proc.stdout)
        if opts.results:
            (REF / f"{opts.name}.results.json").write_text(results.read_text())
    case = {"name": opts.name, "args": args, "results": opts.results}
    if opts.reference_kv:
        case["reference_kv"] = True
    cases = [c for c in json.loads((REF / "cases.json").read_text()) if c["name"] != opts.name]
    cases.append(case)
    (REF / "cases.json").write_text(json.dumps(cases, indent=1))
    print(f"recorded {opts.name} ({len(proc.stdout.splitlines())} lines of stdout)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
