"""Native ServeGen data (``servegen_data``) turned into workload-spec clients.

A ServeGen folder holds, per chunk (a client), ``chunk-<id>-trace.csv`` with
rows ``start_time_s, rate, cv, pattern[, ...]`` (one row per time window) and
``chunk-<id>-dataset.json`` mapping a window's start time to Python-dict
strings of token-count probabilities (``"{100: 0.5, 200: 0.5}"``) for
``input_tokens`` and ``output_tokens``. Each chunk becomes one client: the
busiest window in the span sets its rate share and arrival process (gamma or
weibull with the window's CV, else poisson), and the first window in the span
with both PDFs sets its empirical length laws. Chunks whose rates are all zero
are skipped.

Unlike BLIS, dataset windows are taken in numeric order of their start times
(BLIS sorts them as strings, so with a span it can pick a later window).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Optional

from ..errors import WorkloadError
from ..goparse import parse_float
from .spec import ArrivalSpec, ClientSpec, DistSpec, ServeGenDataSpec

log = logging.getLogger("blis_gym")

_PREFIX, _TRACE, _DATASET = "chunk-", "-trace.csv", "-dataset.json"


def parse_pdf(text: str, where: str) -> dict[int, float]:
    """A ServeGen PDF string ``"{100: 0.5, 200.0: 0.5,}"`` as token count -> probability."""
    s = text.strip()
    if not (s.startswith("{") and s.endswith("}")):
        raise WorkloadError(f"{where}: expected a dict string like '{{100: 0.5}}', got {s[:40]!r}")
    pdf: dict[int, float] = {}
    for pair in s[1:-1].split(","):
        pair = pair.strip()
        if not pair:
            continue  # a trailing comma
        key, sep, value = pair.partition(":")
        count = parse_float(key.strip())
        prob = parse_float(value.strip())
        if not sep or count is None or prob is None or not math.isfinite(count):
            raise WorkloadError(f"{where}: invalid entry {pair!r} (expected token_count: probability)")
        pdf[int(count)] = prob
    if not pdf:
        raise WorkloadError(f"{where}: empty PDF")
    return pdf


def _busiest_window(path: Path, sg: ServeGenDataSpec) -> tuple[float, float, str]:
    """(rate, cv, pattern) of the window with the highest rate in the span; rate 0 if none."""
    best = (0.0, 0.0, "")
    skipped = 0
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            width = None
            for row in reader:
                if not row:
                    continue
                if width is None:
                    width = len(row)
                elif len(row) != width:  # Go's csv.Reader demands a constant field count
                    raise WorkloadError(f"{path}: line {reader.line_num}: expected {width} fields, got {len(row)}")
                values = [parse_float(field.strip()) for field in row[:3]] if len(row) >= 4 else [None]
                if any(v is None for v in values):
                    skipped += 1
                    continue
                start, rate, cv = values
                if (sg.span_start > 0 and start < sg.span_start) or (sg.span_end > 0 and start >= sg.span_end):
                    continue
                if rate > best[0]:
                    best = (rate, cv, row[3].strip())
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read ({exc.strerror})") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{path}: malformed CSV ({exc})") from None
    if skipped:
        log.warning("servegen: %d rows in %s skipped (short rows or non-numbers)", skipped, path)
    return best


def _first_window_pdfs(path: Path, sg: ServeGenDataSpec) -> tuple[dict[int, float], dict[int, float]]:
    try:
        dataset = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkloadError(f"{path}: dataset file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WorkloadError(f"{path}: cannot read dataset JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(dataset, dict) or not all(
        isinstance(w, dict) and all(isinstance(v, str) for v in w.values()) for w in dataset.values()
    ):
        raise WorkloadError(f"{path}: expected {{window_start: {{input_tokens: str, output_tokens: str}}}}")
    windows = []
    for key, window in dataset.items():
        start = parse_float(key)
        if start is None:
            log.warning("servegen: %s: skipping non-numeric window key %r", path, key)
            continue
        windows.append((start, key, window))
    for start, key, window in sorted(windows, key=lambda w: w[0]):
        if (sg.span_start > 0 and start < sg.span_start) or (sg.span_end > 0 and start >= sg.span_end):
            continue
        inputs, outputs = window.get("input_tokens", ""), window.get("output_tokens", "")
        if inputs and outputs:
            return (
                parse_pdf(inputs, f"{path}: window {key}: input_tokens"),
                parse_pdf(outputs, f"{path}: window {key}: output_tokens"),
            )
    raise WorkloadError(f"{path}: no window in the span has both input_tokens and output_tokens")


def _chunk_client(folder: Path, chunk: str, sg: ServeGenDataSpec) -> Optional[ClientSpec]:
    rate, cv, pattern = _busiest_window(folder / f"{_PREFIX}{chunk}{_TRACE}", sg)
    if rate <= 0:
        return None  # an inactive chunk
    inputs, outputs = _first_window_pdfs(folder / f"{_PREFIX}{chunk}{_DATASET}", sg)
    process = pattern.lower()
    arrival = ArrivalSpec(process, cv) if process in ("gamma", "weibull") else ArrivalSpec("poisson")
    return ClientSpec(
        id=f"servegen-chunk-{chunk}",
        tenant_id=f"chunk-{chunk}",
        rate_fraction=rate,
        arrival=arrival,
        input_distribution=DistSpec("empirical", {str(k): v for k, v in inputs.items()}),
        output_distribution=DistSpec("empirical", {str(k): v for k, v in outputs.items()}),
    )


def servegen_clients(sg: ServeGenDataSpec, folder: Path) -> tuple[ClientSpec, ...]:
    """One client per active chunk of the ServeGen folder, in file-name order."""
    if not folder.is_dir():
        raise WorkloadError(f"servegen_data.path {sg.path}: no such folder ({folder})")
    traces = sorted(p.name for p in folder.glob(f"{_PREFIX}*{_TRACE}"))
    if not traces:
        raise WorkloadError(f"servegen_data.path {sg.path}: no {_PREFIX}*{_TRACE} files in {folder}")
    clients = []
    for name in traces:
        client = _chunk_client(folder, name[len(_PREFIX) : -len(_TRACE)], sg)
        if client is not None:
            clients.append(client)
    if not clients:
        raise WorkloadError(f"servegen_data.path {sg.path}: every chunk is inactive in the span")
    return tuple(clients)
