"""``blis convert`` (a preset, a ServeGen folder, an inference-perf spec to a workload spec; any
trace to a trace v2 folder) and ``blis compose`` (specs merged). Specs go to stdout or ``--out``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from ..fileio import write_atomic

convert_app = typer.Typer(
    name="convert",
    help="Turn a preset, a ServeGen folder or an inference-perf spec into a workload spec, "
    "or any trace into a trace v2 folder.",
    no_args_is_help=True,
    add_completion=False,
)


def _emit(text: str, out: Optional[str]) -> None:
    if out:
        write_atomic(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


@convert_app.command("preset")
def convert_preset(
    name: str = typer.Option(..., "--name", help="A workload preset of the defaults file (chatbot, summarization...)."),
    rate: float = typer.Option(1.0, "--rate", help="Requests per second (constant arrivals, as the preset runs)."),
    num_requests: int = typer.Option(100, "--num-requests", help="Requests the spec generates."),
    defaults_filepath: Optional[str] = typer.Option(
        None, "--defaults-filepath", help="A defaults file in BLIS's or our format. Default: the shipped one."
    ),
    out: Optional[str] = typer.Option(None, "--out", help="Write the spec here (default: stdout)."),
) -> None:
    """A preset as a one-client workload spec."""
    from ..config.catalog import load_catalog
    from ..workload.convert import preset_spec, spec_yaml

    catalog = load_catalog(defaults_filepath)
    preset = catalog.preset(name)
    if preset is None:
        raise ConfigError(f"--name: unknown preset {name!r} (valid: {', '.join(sorted(catalog.workloads))})")
    spec = preset_spec(name, preset, rate, num_requests)
    _emit(spec_yaml(spec, f"The {name} preset at {rate:g} req/s (blis convert preset)."), out)


@convert_app.command("servegen")
def convert_servegen(
    path: str = typer.Option(..., "--path", help="A folder of ServeGen chunk-<id>-trace.csv and -dataset.json files."),
    span_start: int = typer.Option(0, "--span-start", help="Seconds into the data to start from."),
    span_end: int = typer.Option(0, "--span-end", help="Seconds into the data to stop at (0: the end)."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the spec here (default: stdout)."),
) -> None:
    """ServeGen data as a spec: one client per active chunk, with its empirical lengths inline."""
    from ..workload.convert import checked, expanded_spec, spec_yaml
    from ..workload.servegen import servegen_clients
    from ..workload.spec import ServeGenDataSpec, WorkloadSpec

    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"--path {path}: no such folder")
    sg = ServeGenDataSpec(str(folder), span_start, span_end)
    clients = servegen_clients(sg, folder)
    rate = sum(c.rate_fraction for c in clients)  # ServeGen rates are absolute (req/s)
    spec = WorkloadSpec(version="1", seed=42, aggregate_rate=rate, num_requests=1000, clients=clients)
    spec = checked(expanded_spec(spec), f"--path {path}")
    _emit(spec_yaml(spec, f"ServeGen data from {path} (blis convert servegen)."), out)


@convert_app.command("inference-perf")
def convert_inference_perf(
    spec_path: str = typer.Option(..., "--spec", help="A workload spec with an inference_perf section."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the spec here (default: stdout)."),
) -> None:
    """An inference-perf spec with its stages and shared prefixes expanded into clients."""
    from ..workload.convert import expanded_spec, spec_yaml
    from ..workload.spec_loader import load_workload_spec

    spec = load_workload_spec(spec_path)
    _emit(spec_yaml(expanded_spec(spec), f"{spec_path} expanded (blis convert inference-perf)."), out)


@convert_app.command("trace")
def convert_trace(
    source: str = typer.Option(
        ..., "--input", help="A trace: BLIS's CSV, trace v2, Mooncake JSONL, Azure or BurstGPT CSV, or a shipped name."
    ),
    out: str = typer.Option(..., "--out", help="The trace v2 folder to write (trace_header.yaml, trace_data.csv)."),
    trace_start: float = typer.Option(0.0, "--trace-start", help="Window start, seconds into the trace."),
    trace_duration: float = typer.Option(0.0, "--trace-duration", help="Window length in seconds (0: to the end)."),
    trace_speedup: float = typer.Option(1.0, "--trace-speedup", help="Arrivals this many times faster."),
) -> None:
    """Any trace (or a window of it) as a trace v2 folder that blis replay and --workload traces read."""
    from ..plan import RunOptions, generate_requests
    from ..workload.convert import write_trace_folder

    opts = RunOptions(
        model="convert",
        workload="traces",
        workload_traces_filepath=source,
        trace_start=trace_start,
        trace_duration=trace_duration,
        trace_speedup=trace_speedup,
    )
    requests = generate_requests(opts)
    header, data = write_trace_folder(requests, Path(out))
    print(f"wrote {len(requests)} requests to {header.parent}", file=sys.stderr)


def compose_cmd(
    sources: list[str] = typer.Option(..., "--from", help="A workload spec (a file or shipped name); repeat it."),
    out: Optional[str] = typer.Option(None, "--out", help="Write the merged spec here (default: stdout)."),
) -> None:
    """Merge workload specs: every client kept, each spec's clients sharing its rate (upstream's rule)."""
    from ..workload.convert import compose_specs, expanded_spec, spec_yaml
    from ..workload.spec_loader import load_workload_spec

    specs = [(s, expanded_spec(load_workload_spec(s))) for s in sources]
    merged = compose_specs(specs)
    _emit(spec_yaml(merged, "Composed from " + ", ".join(sources) + " (blis compose)."), out)
