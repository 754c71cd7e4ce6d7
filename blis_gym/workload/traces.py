"""Replay of recorded requests from a CSV trace.

Format (header row required)::

    arrival_time,request_id,model,prefill_tokens,decode_tokens
    0.0,req_0,llama,"[1,2,3,4,5]","[101,102,103]"

``arrival_time`` is in seconds; ``request_id`` and ``model`` are ignored
(requests are named ``request_0, request_1, ...`` in file order); the token
columns are JSON arrays of integers. Rows arriving after the horizon end the
file. Trace replay draws no random numbers.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config.schema import MAX_INT64
from ..engine.request import Request
from ..errors import WorkloadError
from ..fileio import open_text

_I64 = 1 << 63  # token ids are stored as int64
COLUMNS = ("arrival_time", "request_id", "model", "prefill_tokens", "decode_tokens")


def _tokens(path: str, line: int, column: str, text: str) -> list[int]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(type(v) is int and -_I64 <= v < _I64 for v in value):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise WorkloadError(f"{path}: line {line}: {column} must be a JSON array of 64-bit integers, got {shown!r}")
    return value


def load_trace(path: str | Path, horizon: int = MAX_INT64) -> list[Request]:
    """Read a CSV trace into requests, validating every row; raises WorkloadError naming the line."""
    name = str(path)
    try:
        handle = open_text(path)
    except FileNotFoundError:
        raise WorkloadError(f"{name}: trace file not found") from None
    except OSError as exc:
        raise WorkloadError(f"{name}: cannot read trace file: {exc.strerror}") from None
    out: list[Request] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise WorkloadError(f"{name}: trace file is empty; expected a header row: {','.join(COLUMNS)}")
            width = len(header)
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != width or len(row) < 5:
                    raise WorkloadError(
                        f"{name}: line {line}: expected {max(width, 5)} columns ({','.join(COLUMNS)}), got {len(row)}"
                    )
                try:
                    seconds = float(row[0])
                except ValueError:
                    raise WorkloadError(
                        f"{name}: line {line}: arrival_time must be a number of seconds, got {row[0]!r}"
                    ) from None
                if not math.isfinite(seconds) or seconds < 0:
                    raise WorkloadError(f"{name}: line {line}: arrival_time must be finite and >= 0, got {row[0]!r}")
                arrival = int(seconds * 1e6)
                if arrival > horizon:
                    break
                inputs = _tokens(name, line, "prefill_tokens", row[3])
                outputs = _tokens(name, line, "decode_tokens", row[4])
                idx = len(out)
                out.append(Request(f"request_{idx}", idx, arrival, inputs, outputs))
        except csv.Error as exc:
            raise WorkloadError(f"{name}: line {reader.line_num}: malformed CSV: {exc}") from None
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            raise WorkloadError(f"{name}: not a UTF-8 text file (or gzip of one)") from None
    return out


def arrival_text(t: int) -> str:
    """A number of seconds that BLIS's reader (``int64(seconds * 1e6)``) and ours read back as
    ``t`` microseconds exactly (``t / 1e6`` printed plainly may read as ``t - 1``)."""
    f = t / 1e6
    while int(f * 1e6) < t:
        f = math.nextafter(f, math.inf)
    while int(f * 1e6) > t:
        f = math.nextafter(f, -math.inf)
    return repr(f)


def write_trace(requests: Sequence[Request], path: str | Path) -> None:
    """Write ``requests`` as BLIS's CSV trace, token by token, in their order: replayed, they run
    as they do here (a production trace's window, for BLIS itself say)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for r in requests:
            prompt = json.dumps(np.asarray(r.input).tolist(), separators=(",", ":"))
            output = json.dumps(np.asarray(r.output).tolist(), separators=(",", ":"))
            out.writerow([arrival_text(r.arrival), r.id, "trace", prompt, output])
