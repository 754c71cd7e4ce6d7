"""``blis sweep``: run a sweep file's points on Ray into a results table (the ``distributed`` extra)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from ..config.datafiles import shipped_names
from ..errors import ConfigError
from .progress import ProgressBar


def _spec_help() -> str:
    return (
        "Sweep file (YAML), or a shipped sweep by name: " + ", ".join(shipped_names("sweeps")) + ". "
        "'base:' maps blis run options (flag names, with underscores) to values; 'axes:' lists "
        "'option: [values]' items, crossed in order (first outermost), or 'zip: {option: [values], ...}' "
        "items varied together. Seeds, policy bundles (policy_config) and workload specs are options too."
    )


def sweep_cmd(
    spec: str = typer.Argument(..., metavar="SWEEP", help=_spec_help()),
    out: str = typer.Option(
        "sweep-out",
        "--out",
        help="Folder for results.parquet, results.csv, a copy of the sweep "
        "file and points.jsonl (finished points: rerunning into the "
        "same folder resumes).",
    ),
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        help="Points run at once. Default: every core of the embedded Ray, or every CPU of the --address cluster.",
    ),
    address: str = typer.Option(
        "",
        "--address",
        help="A running Ray cluster (HOST:PORT from 'ray start --head', "
        "ray://HOST:PORT, or auto). Default: start Ray in this process.",
    ),
    serial: bool = typer.Option(
        False, "--serial", help="Run the points one after another in this process, without Ray."
    ),
    plot: bool = typer.Option(
        False,
        "--plot",
        help="Also draw DIR/plots/METRIC.png: each metric against the first "
        "axis, a line per value of the second (needs the plot extra).",
    ),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for --address to answer."),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."
    ),
) -> None:
    """Run every point of a sweep (one Ray task each); write one row per point to a table.

    Exit status: 0 when every point ran, 1 when some failed (each failure is listed, and
    has its error in the table), 2 for a bad sweep file or option, 130 on Ctrl-C (rerun
    the same command to finish: finished points are kept).
    """
    from ..sweep import load_sweep, run_sweep
    from ..sweep.table import JOURNAL, PARQUET

    if serial and address:
        raise ConfigError("--serial and --address exclude each other (--serial runs without Ray)")
    if timeout <= 0:
        raise ConfigError(f"--timeout must be > 0, got {timeout}")
    sweep = load_sweep(spec)
    # Points' default-resolution warnings would repeat once per point; errors end up in the table.
    logging.getLogger("blis_gym").setLevel(logging.ERROR)
    show = sys.stderr.isatty() if progress is None else progress
    state: dict = {"done": 0, "bar": None, "what": "points"}

    def on_progress(done: int, total: int, failed: int) -> None:
        if show:
            bar = state["bar"]
            if bar is None:  # a bar per sweep run (the selection's validation is a second one)
                bar = state["bar"] = ProgressBar(total, state["what"], eta=True)
                bar.base = done  # resumed points: no pace from them
            bar(done, f"{failed} failed" if failed else "")
        state["done"] = done

    folder = Path(out)

    def run(spec, where: Path):
        return run_sweep(
            spec, where, workers=workers, address=address, serial=serial, timeout_s=timeout, progress=on_progress
        )

    try:
        report = run(sweep, folder)
        if sweep.selection is not None:
            from ..sweep.select import run_selection

            state.update(done=0, bar=None, what="validation points")
            chosen = run_selection(sweep, folder, report.rows, lambda spec, where: run(spec, where).rows)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {state['done']}/{len(sweep.points)} points done, kept in {folder / JOURNAL}; "
            f"run the same command again to finish",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    if plot:
        import pyarrow.parquet as pq

        from ..sweep.plot import plot_sweep

        rows = pq.read_table(folder / PARQUET).to_pylist()
        charts = plot_sweep(folder, sweep.columns, rows)
        report.files.append(charts[-1])
        print(f"drew {len(charts)} charts in {charts[-1].parent}", file=sys.stderr)
    ran = f"{report.ran} run in {report.seconds:.1f} s" + (f", {report.resumed} resumed" if report.resumed else "")
    print(f"{report.total} points ({ran}); {len(report.failures)} failed", file=sys.stderr)
    for path in report.files:
        print(f"wrote {path}", file=sys.stderr)
    if sweep.selection is not None:
        sel, best = sweep.selection, chosen.validation[0]
        trained = next(i for i, s in enumerate(chosen.training, 1) if s.value == best.value)
        print(
            f"selected {sel.among} = {best.value}: mean {sel.metric} {best.mean:.4g} on validation "
            f"({len(chosen.validation)} finalists; {trained} of {len(chosen.training)} in training)",
            file=sys.stderr,
        )
        for path in chosen.files:
            print(f"wrote {path}", file=sys.stderr)
    for line in report.failures:
        print(f"failed: {line}", file=sys.stderr)
    if report.failures:
        raise typer.Exit(1)
