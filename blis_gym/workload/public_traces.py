"""Public production traces as workloads: Mooncake JSONL, Azure LLM inference CSV, BurstGPT CSV.

``--workload traces --workload-traces-filepath FILE`` reads these beside BLIS's own CSV and trace
v2, plain or gzip-compressed, recognised by their content (:func:`detect_format`). Four ship
with the package and load by name (``SHIPPED_TRACES``), compressed, with their licences and
attribution in ``configs/traces/``.

- **Mooncake** (``{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}`` a
  line): each hash id names one 512-token block of the prompt; requests that list the same id
  at the same position share those tokens, the last block holds what is left of
  ``input_length``. Prompts are :class:`~blis_gym.engine.segments.SegmentedPrompt`\\ s over
  one store per trace, so prefix caching and prefix-aware routing see exactly the sharing the
  trace records, and no prompt holds its tokens.
- **Azure** (``TIMESTAMP,ContextTokens,GeneratedTokens``; the 2023 and 2024 releases): wall-clock
  timestamps, read to the microsecond as time since the first request. Prompts share nothing.
- **BurstGPT** (``Timestamp,Model,Request tokens,Response tokens,...``): seconds on the trace's
  own clock. Prompts share nothing.

Every row is checked; a bad one is one :class:`WorkloadError` naming the file, line and field.
Timestamps must not decrease (the published traces are sorted; we refuse rather than sort).
Windows and speed-ups (:mod:`.windows`) select what a run replays.
"""

from __future__ import annotations

import calendar
import csv
import functools
import gzip
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Optional, Sequence, Union

import numpy as np

from ..config.datafiles import SHIPPED_TRACES, shipped_dir
from ..engine.request import Request
from ..engine.segments import SegmentedPrompt, SegmentStore
from ..errors import WorkloadError
from ..fileio import open_text
from .windows import TraceWindow

MOONCAKE, AZURE, BURSTGPT, BLIS_CSV = "mooncake", "azure", "burstgpt", "blis-csv"
PUBLIC_FORMATS = (MOONCAKE, AZURE, BURSTGPT)
MOONCAKE_BLOCK = 512  # tokens a Mooncake hash id stands for
# Output tokens: unique to each request, far from the prompt segments' ids.
_OUTPUT_FIRST = 1 << 52

_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")
_BLIS_COLUMNS = ("arrival_time", "request_id", "model", "prefill_tokens", "decode_tokens")
_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:Z|[+-]00:?00)?")
_SECONDS = re.compile(r"\+?(\d+)(?:\.(\d*))?")


def trace_location(name_or_path: str) -> str:
    """The file a ``--workload-traces-filepath`` value names: a shipped trace by name, else the
    path as given."""
    if name_or_path in SHIPPED_TRACES and not Path(name_or_path).exists():
        return str(shipped_dir("traces").joinpath(SHIPPED_TRACES[name_or_path]))
    return name_or_path


def detect_format(path: Union[str, Path]) -> Optional[str]:
    """The format of the trace file at ``path`` from its first line: ``mooncake``, ``azure``,
    ``burstgpt``, ``blis-csv``, or None (unrecognised, or unreadable: the caller's reader
    reports why)."""
    try:
        with open_text(path) as f:
            first = next((line for line in f if line.strip()), "")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None
    if first.lstrip().startswith("{"):
        try:
            row = json.loads(first)
        except ValueError:
            return None
        return MOONCAKE if isinstance(row, dict) and "hash_ids" in row else None
    header = [c.strip() for c in next(csv.reader([first]), [])]
    if all(c in header for c in _AZURE_COLUMNS):
        return AZURE
    if all(c in header for c in _BURSTGPT_COLUMNS):
        return BURSTGPT
    if tuple(header[:5]) == _BLIS_COLUMNS:
        return BLIS_CSV
    return None


@dataclass(frozen=True)
class TraceTable:
    """A trace's rows, in file order: arrival on the trace's own clock (µs), prompt and output
    lengths, and (Mooncake) each prompt's block ids."""

    source: str
    arrival_us: np.ndarray  # int64
    n_in: np.ndarray  # int64
    n_out: np.ndarray  # int64
    blocks: Optional[list[Sequence[int]]] = None

    def __len__(self) -> int:
        return len(self.arrival_us)

    def requests(self, window: TraceWindow = TraceWindow(), horizon: Optional[int] = None) -> list[Request]:
        """The requests of the rows ``window`` selects (named ``request_0, 1, ...`` in order),
        arriving re-based and sped up; rows arriving after ``horizon`` (ticks) end the list."""
        rows = np.flatnonzero(window.selects(self.arrival_us))
        store = SegmentStore(MOONCAKE_BLOCK)
        out_first = _OUTPUT_FIRST + np.concatenate((np.zeros(1, np.int64), np.cumsum(self.n_out)))
        fresh = 0  # segment ids for prompts that share nothing (the trace lists no blocks)
        out: list[Request] = []
        for row in rows.tolist():
            arrival = window.arrival(int(self.arrival_us[row]))
            if horizon is not None and arrival > horizon:
                break
            n_in = int(self.n_in[row])
            if self.blocks is not None:
                segments = self.blocks[row]
            else:  # nothing shared: fresh segments of their own
                k = -(-n_in // MOONCAKE_BLOCK)
                segments = range(fresh, fresh + k)
                fresh += k
            prompt = SegmentedPrompt(store, segments, n_in)
            first = int(out_first[row])
            outputs = np.arange(first, first + int(self.n_out[row]), dtype=np.int64)
            out.append(Request(f"request_{len(out)}", len(out), arrival, prompt, outputs))
        return out


def read_trace(path: Union[str, Path], kind: str) -> TraceTable:
    """Read a Mooncake, Azure or BurstGPT trace (``kind`` from :func:`detect_format`). The last
    few tables read are kept (an environment reads its trace at every reset) for as long as
    their files do not change."""
    try:
        stat = os.stat(path)
    except OSError:
        return _read_trace(str(path), kind, 0, 0)  # which reports the problem
    return _read_trace(str(path), kind, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_trace(name: str, kind: str, mtime_ns: int, size: int) -> TraceTable:
    reader = {MOONCAKE: _read_mooncake, AZURE: _read_azure, BURSTGPT: _read_burstgpt}[kind]
    try:
        with open_text(name) as f:
            return reader(name, f)
    except FileNotFoundError:
        raise WorkloadError(f"{name}: trace file not found") from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise WorkloadError(f"{name}: not a readable (UTF-8, or gzip of UTF-8) trace: {exc}") from None
    except OSError as exc:
        raise WorkloadError(f"{name}: cannot read trace file: {exc.strerror or exc}") from None


class _Rows:
    """Builds a table row by row, checking what every format shares."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.arrival: list[int] = []
        self.n_in: list[int] = []
        self.n_out: list[int] = []
        self.last_line = 0

    def fail(self, line: int, message: str) -> WorkloadError:
        return WorkloadError(f"{self.name}: line {line}: {message}")

    def length(self, line: int, field: str, value: object) -> int:
        if type(value) is str:
            value = value.strip()
            value = int(value) if re.fullmatch(r"\+?\d+", value) else value
        if type(value) is not int or value < 0:
            raise self.fail(line, f"{field} must be a whole number of tokens >= 0, got {value!r}")
        return value

    def add(self, line: int, arrival_us: int, n_in: int, n_out: int) -> None:
        if self.arrival and arrival_us < self.arrival[-1]:
            raise self.fail(
                line,
                f"timestamps must not decrease (this row arrives {self.arrival[-1] - arrival_us} µs before line "
                f"{self.last_line}'s); sort the trace by time",
            )
        self.arrival.append(arrival_us)
        self.n_in.append(n_in)
        self.n_out.append(n_out)
        self.last_line = line

    def table(self, blocks: Optional[list[Sequence[int]]] = None) -> TraceTable:
        if not self.arrival:
            raise WorkloadError(f"{self.name}: the trace has no requests")
        columns = [np.asarray(c, dtype=np.int64) for c in (self.arrival, self.n_in, self.n_out)]
        for c in columns:
            c.setflags(write=False)  # tables are shared (read_trace keeps the last few)
        return TraceTable(self.name, *columns, blocks)


def _read_mooncake(name: str, f: IO[str]) -> TraceTable:
    rows = _Rows(name)
    blocks: list[Sequence[int]] = []
    for line, text in enumerate(f, 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except ValueError as exc:
            raise rows.fail(line, f"not a JSON object: {exc.msg}") from None
        if not isinstance(row, dict):
            raise rows.fail(line, "not a JSON object")
        for field in ("timestamp", "input_length", "output_length", "hash_ids"):
            if field not in row:
                raise rows.fail(line, f"{field} is missing")
        stamp = row["timestamp"]
        if type(stamp) is not int or stamp < 0:
            raise rows.fail(line, f"timestamp must be a whole number of milliseconds >= 0, got {stamp!r}")
        n_in = rows.length(line, "input_length", row["input_length"])
        n_out = rows.length(line, "output_length", row["output_length"])
        ids = row["hash_ids"]
        if not isinstance(ids, list) or not all(type(h) is int and h >= 0 for h in ids):
            raise rows.fail(line, f"hash_ids must be a list of whole numbers >= 0, got {str(ids)[:40]!r}")
        if not MOONCAKE_BLOCK * (len(ids) - 1) < n_in <= MOONCAKE_BLOCK * len(ids) and (n_in or ids):
            raise rows.fail(
                line,
                f"input_length {n_in} needs {-(-n_in // MOONCAKE_BLOCK)} hash ids of {MOONCAKE_BLOCK} tokens, "
                f"hash_ids has {len(ids)}",
            )
        rows.add(line, stamp * 1000, n_in, n_out)
        blocks.append(tuple(ids))
    return rows.table(blocks)


def _csv_rows(name: str, f: IO[str], columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(f)
    try:
        header = [c.strip() for c in next(reader, [])]
        where = {c: header.index(c) for c in columns if c in header}
        missing = [c for c in columns if c not in where]
        if missing:
            raise WorkloadError(f"{name}: line 1: the header lacks {', '.join(missing)}")
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise WorkloadError(f"{name}: line {reader.line_num}: {len(row)} fields, the header has {len(header)}")
            yield reader.line_num, {c: row[i] for c, i in where.items()}
    except csv.Error as exc:
        raise WorkloadError(f"{name}: line {reader.line_num}: malformed CSV: {exc}") from None


def _read_azure(name: str, f: IO[str]) -> TraceTable:
    rows = _Rows(name)
    origin: Optional[int] = None
    for line, row in _csv_rows(name, f, _AZURE_COLUMNS):
        stamp = row["TIMESTAMP"].strip()
        m = _STAMP.fullmatch(stamp)
        if m is None:
            raise rows.fail(
                line, f"TIMESTAMP must be a date and time such as 2023-11-16 18:15:46.6805900, got {stamp!r}"
            )
        year, month, day, hour, minute, second = (int(x) for x in m.groups()[:6])
        try:
            whole = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        except (ValueError, OverflowError):
            raise rows.fail(line, f"TIMESTAMP is not a valid date and time: {stamp!r}") from None
        us = whole * 1_000_000 + int((m.group(7) or "").ljust(6, "0")[:6])  # truncated to the µs
        origin = us if origin is None else origin
        rows.add(
            line,
            us - origin,
            rows.length(line, "ContextTokens", row["ContextTokens"]),
            rows.length(line, "GeneratedTokens", row["GeneratedTokens"]),
        )
    return rows.table()


def seconds_to_us(text: str) -> Optional[int]:
    """A non-negative decimal number of seconds as whole microseconds (truncated), exactly;
    None when ``text`` is not one."""
    m = _SECONDS.fullmatch(text.strip())
    if m is None:
        return None
    return int(m.group(1)) * 1_000_000 + int((m.group(2) or "").ljust(6, "0")[:6])


def _read_burstgpt(name: str, f: IO[str]) -> TraceTable:
    rows = _Rows(name)
    for line, row in _csv_rows(name, f, _BURSTGPT_COLUMNS):
        us = seconds_to_us(row["Timestamp"])
        if us is None:
            raise rows.fail(line, f"Timestamp must be a number of seconds >= 0, got {row['Timestamp'].strip()!r}")
        rows.add(
            line,
            us,
            rows.length(line, "Request tokens", row["Request tokens"]),
            rows.length(line, "Response tokens", row["Response tokens"]),
        )
    return rows.table()
