"""``blis observe``: send a ``blis run`` workload to an OpenAI-compatible server and record a
real-mode trace v2 of what it did (the ``serve`` extra: aiohttp, and uvloop when installed)."""

from __future__ import annotations

import math
import os
import re
import sys
from collections import Counter
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence
from urllib.parse import urlsplit

import typer

from ..errors import ConfigError
from ..plan.options import WORKLOAD_OPTIONS
from .logs import setup_logging
from .progress import ProgressBar
from .run_command import run_options_from_args

if TYPE_CHECKING:
    from ..workload.tracev2 import TraceRecord

_WHERE = "blis observe: workload flags after --"
# blis run flags that shape the requests; any other given after -- has no effect here.
_WORKLOAD_FLAGS = frozenset({"seed", "horizon", "log", "defaults_filepath", *WORKLOAD_OPTIONS})


def _iso_utc(us: int) -> str:
    """µs since the Unix epoch as an ISO 8601 UTC timestamp with microseconds."""
    return (
        datetime.fromtimestamp(us // 1_000_000, timezone.utc)
        .replace(microsecond=us % 1_000_000)
        .strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    )


_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(flag: str, text: str) -> float:
    """Seconds of a duration flag: a number of seconds, or one with a unit (``500ms``, ``30s``,
    ``2m``, ``1h``, as BLIS's Go durations); ConfigError otherwise."""
    m = _DURATION.fullmatch(text)
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)] if m else math.nan
    if not math.isfinite(seconds):
        raise ConfigError(f"{flag} must be a duration >= 0 (seconds, or with a unit: 500ms, 30s, 2m, 1h), got {text!r}")
    return seconds


def _check_flags(
    url: str, concurrency: int, timeout: float, connect_timeout: float, warm_up: int, api_format: str
) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ConfigError(f"--url must be http://HOST[:PORT] or https://HOST[:PORT], got {url!r}")
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    for flag, value in (("--timeout", timeout), ("--connect-timeout", connect_timeout)):
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"{flag} must be a finite number of seconds > 0, got {value}")
    if warm_up < 0:
        raise ConfigError(f"--warm-up must be >= 0, got {warm_up}")
    if api_format not in ("completions", "chat"):
        raise ConfigError(f"--api-format must be completions or chat, got {api_format!r}")


def _api_key(ctx: typer.Context, var: str) -> str:
    """The key from the environment variable ``var``; unset is fine unless the flag was given."""
    key = os.environ.get(var, "")
    source = ctx.get_parameter_source("api_key_env")
    if not key and source is not None and source.name == "COMMANDLINE":
        raise ConfigError(f"--api-key-env {var}: the environment variable is not set or empty")
    return key


def observe_cmd(
    ctx: typer.Context,
    url: str = typer.Option(
        ..., "--url", help="The server's base URL, e.g. http://localhost:8000 (a trailing /v1 is allowed)."
    ),
    model: str = typer.Option(..., "--model", help='Model name the server serves (sent as "model").'),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY",
        "--api-key-env",
        help=(
            "Environment variable holding the API key, sent as a Bearer token (none when unset). The "
            "key itself is never a flag."
        ),
    ),
    out: str = typer.Option(
        "observe-out", "--out", help="Folder for the trace: trace_header.yaml and trace_data.csv (mode real)."
    ),
    concurrency: int = typer.Option(
        64, "--concurrency", help="Requests in flight at most; a due request waits for a free slot."
    ),
    timeout: float = typer.Option(
        300.0,
        "--timeout",
        help="Seconds one request may take from send to last byte; then it is recorded as a timeout.",
    ),
    connect_timeout: float = typer.Option(
        5.0, "--connect-timeout", help="Seconds to open a connection (and to wait for GET /v1/models before sending)."
    ),
    warm_up: int = typer.Option(
        0,
        "--warm-up",
        help=(
            "Marks the first N requests (ids 0..N-1) as warm-up in the header; calibration skips "
            "them. They are sent like the rest."
        ),
    ),
    api_format: str = typer.Option(
        "completions",
        "--api-format",
        help="completions: /v1/completions with a prompt; chat: /v1/chat/completions with one user message.",
    ),
    chat: bool = typer.Option(False, "--chat", hidden=True, help="Same as --api-format chat."),
    stream: Optional[bool] = typer.Option(
        None,
        "--stream/--no-stream",
        help=(
            "Stream every request, or none. Default: a workload spec's per-client streaming, a trace "
            "v2's per-row flag, else stream."
        ),
    ),
    record_itl: bool = typer.Option(
        False,
        "--record-itl",
        help=(
            "Also record when each streamed chunk arrived, in trace_data.itl.csv beside the trace (blis "
            "calibrate takes ITL from it). Every request streams; excludes --no-stream."
        ),
    ),
    prewarm_duration: str = typer.Option(
        "0",
        "--prewarm-duration",
        help=(
            "Before the workload, keep the server busy this long (e.g. 60s, 2m) with small requests "
            "(4 at a time, 256 prompt and 64 output tokens), not recorded. 0: none."
        ),
    ),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Progress bar on stderr (default: on a terminal)."
    ),
) -> None:
    """Send a workload to an OpenAI-compatible server; record a trace v2 of what it did.

    The workload is blis run's, from its flags after --, e.g. `blis observe --url
    http://localhost:8000 --model M -- --workload chatbot --rate 5 --num-requests 200`. Each
    request goes at its arrival time with the prompt "Token count: N" and max_tokens = its
    output length.

    Exit status: 0 when the run completed (error and timeout rows included, at least one ok),
    1 when every request failed (the trace is still written), 2 for a bad flag or an
    unreachable server (nothing written), 130 on Ctrl-C (the requests sent so far are written;
    those in flight as error "interrupted").
    """
    import asyncio

    try:
        from ..observe.client import EndpointUnreachable, RealClient, Replay, ServerInfo, run, stop_on_sigint
    except ImportError as exc:  # aiohttp comes with the serve extra
        raise ConfigError(f"blis observe needs aiohttp ({exc}): pip install 'blis-gym[serve]'") from None
    from ..observe.workload import pending_requests
    from ..plan import generate_requests
    from ..workload.itl import ITL_FILE, write_itl
    from ..workload.tracev2 import TraceHeader, TraceNetwork, TraceServer, TraceV2, export_trace_v2

    if chat:
        source = ctx.get_parameter_source("api_format")
        if source is not None and source.name == "COMMANDLINE" and api_format != "chat":
            raise ConfigError(f"--chat contradicts --api-format {api_format}")
        api_format = "chat"
    _check_flags(url, concurrency, timeout, connect_timeout, warm_up, api_format)
    prewarm_s = parse_duration("--prewarm-duration", prewarm_duration)
    if record_itl:
        if stream is False:
            raise ConfigError("--record-itl excludes --no-stream: chunk times need streamed answers")
        stream = True  # as BLIS: every request streams while recording ITL
    api_key = _api_key(ctx, api_key_env)
    opts = run_options_from_args(list(ctx.args), _WHERE)
    setup_logging(opts.log)
    ignored = sorted(f.name for f in fields(opts) if f.name in opts.explicit and f.name not in _WORKLOAD_FLAGS)
    if ignored:
        print(
            "warning: blis run flags that do not shape the workload have no effect here: "
            + ", ".join("--" + n.replace("_", "-") for n in ignored)
            + (" (the served model is blis observe's own --model, before --)" if "model" in ignored else ""),
            file=sys.stderr,
        )
    requests = pending_requests(opts, generate_requests(opts), stream)
    if not requests:
        raise ConfigError(f"{_WHERE}: the workload has no requests")
    if warm_up > len(requests):
        raise ConfigError(f"--warm-up {warm_up}: the workload has only {len(requests)} requests")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")

    show = sys.stderr.isatty() if progress is None else progress
    bar = ProgressBar(len(requests), "requests", eta=True, stream=sys.stderr) if show else None

    def on_done(done: int, failed: int) -> None:
        if bar is not None:
            bar(done, f"{failed} failed" if failed else "")

    def stopping() -> None:
        print(
            "\nstopping: cancelling the requests in flight, then writing the trace (Ctrl-C again to quit without it)",
            file=sys.stderr,
        )

    async def observe() -> tuple[ServerInfo, Replay]:
        async with RealClient(
            url,
            model,
            api_key=api_key,
            api_format=api_format,
            concurrency=concurrency,
            timeout_s=timeout,
            connect_timeout_s=connect_timeout,
            record_itl=record_itl,
        ) as client:
            try:
                info = await client.probe()
            except EndpointUnreachable as exc:
                raise ConfigError(f"--url {url}: cannot connect ({exc})") from None
            if info.warning:
                print(f"warning: {info.warning}", file=sys.stderr)
            try:
                folder.mkdir(parents=True, exist_ok=True)  # before sending: a bad --out costs no run
            except OSError as exc:
                raise ConfigError(f"--out {out}: cannot create: {exc.strerror}") from None
            stop = asyncio.Event()
            stop_on_sigint(stop, stopping)
            if prewarm_s > 0:
                print(f"prewarming the server for {prewarm_s:g} s (not recorded)", file=sys.stderr)
                warm = await client.prewarm(prewarm_s, stop)
                failed = f", {warm.failed} failed" if warm.failed else ""
                print(f"prewarm: {warm.sent} requests in {warm.seconds:.1f} s{failed}", file=sys.stderr)
                if warm.failed and warm.failed == warm.sent:
                    print("warning: every prewarm request failed", file=sys.stderr)
            return info, await client.replay(requests, stop, on_done)

    info, replay = run(observe())
    records = replay.records()
    header = TraceHeader(
        created_at=_iso_utc(replay.started_us),
        mode="real",
        warm_up_requests=warm_up,
        workload_spec=opts.workload_spec,
        server=TraceServer(type=info.owned_by or "openai-compatible", model=model, max_model_len=info.max_model_len),
        network=TraceNetwork(measured_rtt_ms=round(info.rtt_ms, 3)),
    )
    export_trace_v2(TraceV2(header, records), folder, flag="--out")
    itl = None
    if record_itl:
        chunks = write_itl(folder / ITL_FILE, replay.chunk_times(), "--out")
        itl = (folder / ITL_FILE, chunks)
    _report(records, len(requests), replay.interrupted, (replay.ended_us - replay.started_us) / 1e6, folder, itl)


def _report(
    records: Sequence["TraceRecord"],
    total: int,
    interrupted: bool,
    seconds: float,
    folder: Path,
    itl: Optional[tuple[Path, int]] = None,
) -> None:
    """The closing lines on stderr, and the exit status when it is not 0."""
    statuses = Counter(r.status for r in records)
    if itl is not None:
        print(f"wrote {itl[0]} ({itl[1]} chunk times)", file=sys.stderr)
        if not itl[1]:
            print("warning: --record-itl: no chunk was received, the ITL file is empty", file=sys.stderr)
    if interrupted:
        cut = sum(1 for r in records if r.error_message == "interrupted")
        print(
            f"interrupted: recorded {len(records)} of {total} requests in {folder} "
            f'({cut} cut off in flight, recorded as error "interrupted")',
            file=sys.stderr,
        )
        raise SystemExit(130)  # not typer.Exit: main would add its own "error: interrupted"
    print(
        f"observed {len(records)} requests in {seconds:.1f} s: {statuses['ok']} ok, {statuses['error']} errors, "
        f"{statuses['timeout']} timeouts",
        file=sys.stderr,
    )
    for message, n in Counter(r.error_message for r in records if r.status != "ok").most_common(3):
        print(f"  {n} x {message}", file=sys.stderr)
    print(f"wrote {folder / 'trace_header.yaml'} and {folder / 'trace_data.csv'}", file=sys.stderr)
    if statuses["ok"] == 0:
        raise typer.Exit(1)
