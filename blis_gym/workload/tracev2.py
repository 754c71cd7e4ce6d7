"""Trace v2: a YAML header beside a CSV of per-request rows, as BLIS reads and writes them.

A trace folder holds ``trace_header.yaml`` and ``trace_data.csv``. The header says what the
trace is (``mode: real`` for timings observed on a server, ``generated`` for a workload frozen
to a file), the time unit, how many leading requests are warm-up, and optionally the server
and network it was taken on. Each CSV row is one request: who sent it (client, tenant, SLO
class, session and round), its token counts, and its timings in microseconds (arrival, send,
first and last chunk), chunk count and status (``ok``, ``error``, ``timeout``).

The writer emits what BLIS's writer emits (yaml.v3's layout for the header, Go's CSV
quoting, integers for times, Go's shortest fixed notation for the reasoning ratio), so a
trace written, read and written again is byte-identical. The reader takes what BLIS's reader
takes (rows may stop after ``num_chunks``: status defaults to ``ok``), and any bad file, key
or row is one :class:`WorkloadError` naming the file and row.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import yaml

from ..config.slo import SLOTarget, targets_from_yaml
from ..config.yamltyped import decode, resolve_plain
from ..errors import WorkloadError
from ..fileio import write_atomic

log = logging.getLogger("blis_gym")

HEADER_FILE = "trace_header.yaml"
DATA_FILE = "trace_data.csv"
STATUSES = ("ok", "error", "timeout")
MODES = ("real", "generated")

COLUMNS: tuple[str, ...] = (
    "request_id",
    "client_id",
    "tenant_id",
    "slo_class",
    "session_id",
    "round_index",
    "prefix_group",
    "streaming",
    "input_tokens",
    "output_tokens",
    "text_tokens",
    "image_tokens",
    "audio_tokens",
    "video_tokens",
    "reason_ratio",
    "arrival_time_us",
    "send_time_us",
    "first_chunk_time_us",
    "last_chunk_time_us",
    "num_chunks",
    "status",
    "error_message",
)
_REQUIRED = 20  # columns every row must have (status and error_message may be missing)
#: Header versions read: 2 (BLIS at the reference), 3 (upstream's newer, with goodput targets).
TRACE_VERSIONS = (2, 3)
# Columns a trace in upstream's newer layout must name (it is read by column name).
_NAMED_REQUIRED = ("request_id", "input_tokens", "output_tokens", "arrival_time_us")


@dataclass(frozen=True)
class TraceServer:
    """The server a real trace was taken on (every field optional: zero or empty = unknown)."""

    type: str = ""
    model: str = ""
    tensor_parallel: int = 0
    max_num_seqs: int = 0
    block_size: int = 0
    gpu_memory_utilization: float = 0.0
    max_model_len: int = 0


@dataclass(frozen=True)
class TraceNetwork:
    """The network between client and server: measured round trip (ms; 0 = unknown)."""

    measured_rtt_ms: float = 0.0


@dataclass(frozen=True)
class TraceHeader:
    """``trace_header.yaml``: keys and order as BLIS writes them."""

    trace_version: int = 2
    time_unit: str = "microseconds"
    created_at: str = ""
    mode: str = "generated"
    warm_up_requests: int = 0
    workload_spec: str = ""
    server: Optional[TraceServer] = None
    network: Optional[TraceNetwork] = None
    # Upstream's trace_version 3: goodput targets per SLO class (read, never written here).
    goodput_slo_targets: Optional[dict[str, SLOTarget]] = None


@dataclass(frozen=True)
class TraceRecord:
    """One request of a trace; times in microseconds (0 = not recorded)."""

    request_id: int
    client_id: str = ""
    tenant_id: str = ""
    slo_class: str = ""
    session_id: str = ""
    round_index: int = 0
    prefix_group: str = ""
    prefix_length: int = 0  # upstream's newer column: the group's shared prefix, in tokens
    streaming: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    text_tokens: int = 0
    image_tokens: int = 0
    audio_tokens: int = 0
    video_tokens: int = 0
    reason_ratio: float = 0.0
    arrival_time_us: int = 0
    send_time_us: int = 0
    first_chunk_time_us: int = 0
    last_chunk_time_us: int = 0
    num_chunks: int = 0
    status: str = "ok"
    error_message: str = ""


@dataclass(frozen=True)
class TraceV2:
    header: TraceHeader = field(default_factory=TraceHeader)
    records: tuple[TraceRecord, ...] = ()
    # "reference": BLIS's columns at the reference; "upstream": upstream's newer columns (read
    # by name), whose replay gives a prefix group ``prefix_length`` shared tokens.
    layout: str = "reference"


# --- writing ------------------------------------------------------------------------------------


def _shortest(x: float) -> tuple[str, int]:
    """Shortest round-trip digits of ``abs(x)`` and the decimal point's place: 0.DIGITS x 10^dp."""
    text = repr(abs(x))
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    dp = len(whole) + (int(exp) if exp else 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0")
    return (digits or "0"), (dp if digits else 1)


def go_float_g(x: float) -> str:
    """Go's ``strconv.FormatFloat(x, 'g', -1, 64)``, as yaml.v3 writes floats (``.inf``, ``.nan``)."""
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    digits, dp = _shortest(x)
    exp = dp - 1
    if exp < -4 or exp >= 6:  # shortest precision: Go decides with precision 6
        tail = digits[1:]
        return f"{sign}{digits[0]}{'.' + tail if tail else ''}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return sign + _fixed(digits, dp)


def go_float_f(x: float) -> str:
    """Go's ``strconv.FormatFloat(x, 'f', -1, 64)``: shortest digits, never an exponent."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    return sign + _fixed(*_shortest(x))


def _fixed(digits: str, dp: int) -> str:
    """0.DIGITS x 10^dp in plain fixed notation."""
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    whole = digits[:dp].ljust(dp, "0")
    frac = digits[dp:]
    return whole + ("." + frac if frac else "")


_OLD_BOOLS = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"}
_TIMESTAMP = re.compile(r"^\d{4}-\d\d?-\d\d?([Tt ].*)?$")
_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")


def _yaml_str(s: str) -> str:
    """A string as yaml.v3 writes it: plain when that reads back as the same string, double
    quotes when plain would read as another type, single quotes when plain cannot hold it."""
    if s == "":
        return '""'
    if "\n" in s:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if resolve_plain(s)[0] != "str" or s in _OLD_BOOLS or _TIMESTAMP.match(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    plain_ok = (
        (s[0] not in _INDICATORS or (s[0] in "-?:" and len(s) > 1 and s[1] != " "))
        and s == s.strip()
        and ": " not in s
        and " #" not in s
        and not s.endswith(":")
    )
    return s if plain_ok else "'" + s.replace("'", "''") + "'"


def _yaml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float_g(v)
    return _yaml_str(str(v))


def _omitted(value: Any) -> bool:
    return (
        value is None or value == "" or (not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0)
    )


def header_yaml(header: TraceHeader) -> str:
    """The header as yaml.v3's ``Marshal`` lays it out (4-space nesting; ``omitempty`` fields
    left out when empty, as BLIS's struct tags say)."""
    lines = []
    always = {"trace_version", "time_unit", "mode", "warm_up_requests"}
    for f in fields(TraceHeader):
        value = getattr(header, f.name)
        if f.name not in always and _omitted(value):
            continue
        if isinstance(value, (TraceServer, TraceNetwork)):
            inner = [
                f"    {g.name}: {_yaml_value(getattr(value, g.name))}"
                for g in fields(value)
                if not _omitted(getattr(value, g.name))
            ]
            lines.append(f"{f.name}: {{}}" if not inner else f"{f.name}:")
            lines += inner
        else:
            lines.append(f"{f.name}: {_yaml_value(value)}")
    return "\n".join(lines) + "\n"


def _csv_cell(r: TraceRecord, name: str) -> str:
    value = getattr(r, name)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float_f(value)
    return str(value)


def _go_csv_row(cells: Sequence[str]) -> str:
    """One row as Go's ``encoding/csv`` writes it (quotes only where it must; LF line ends)."""
    out = []
    for c in cells:
        if c != "" and (c == "\\." or any(ch in c for ch in ',"\r\n') or c[0] in " \t\n\r\v\f\u0085\u00a0"):
            c = '"' + c.replace('"', '""') + '"'
        out.append(c)
    return ",".join(out) + "\n"


def data_csv(records: Sequence[TraceRecord]) -> str:
    return _go_csv_row(COLUMNS) + "".join(_go_csv_row([_csv_cell(r, c) for c in COLUMNS]) for r in records)


def export_trace_v2(trace: TraceV2, folder: Union[str, Path], flag: str = "--export-trace") -> tuple[Path, Path]:
    """Write ``trace_header.yaml`` and ``trace_data.csv`` into ``folder`` (created if needed),
    each through a temporary file; returns both paths."""
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkloadError(f"{flag} {folder}: cannot create: {exc.strerror}") from None
    header, data = out / HEADER_FILE, out / DATA_FILE
    write_atomic(str(header), header_yaml(trace.header), flag)
    write_atomic(str(data), data_csv(trace.records), flag)
    return header, data


# --- token contents (ours) -----------------------------------------------------------------------

#: Beside a trace we write: every request's token ids, so that replaying it gives the same prompts
#: (which blocks requests share included). BLIS's files are unchanged; a trace without it
#: replays with tokens drawn as BLIS draws them.
TOKENS_FILE = "trace_tokens.npz"


def write_tokens(
    folder: Union[str, Path], ids: Sequence[int], requests: Sequence, flag: str = "--export-trace"
) -> Path:
    """Write the token ids of ``requests`` (their trace ids ``ids``) as ``trace_tokens.npz``."""
    import io

    import numpy as np

    inputs = [np.asarray(r.input, dtype=np.int64) for r in requests]
    outputs = [np.asarray(r.output, dtype=np.int64) for r in requests]
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        request_id=np.asarray(ids, dtype=np.int64),
        input_len=np.asarray([len(x) for x in inputs], dtype=np.int64),
        output_len=np.asarray([len(x) for x in outputs], dtype=np.int64),
        tokens=np.concatenate([*inputs, *outputs]) if requests else np.zeros(0, np.int64),
    )
    path = Path(folder) / TOKENS_FILE
    write_atomic(str(path), buf.getvalue(), flag)
    return path


def load_tokens(path: Union[str, Path]) -> Optional[dict[int, tuple]]:
    """request id -> (input, output) token arrays from a ``trace_tokens.npz``; None when the file
    is not there. A file that cannot be read is one WorkloadError naming it."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        return None
    try:
        with np.load(p) as z:
            ids, n_in, n_out, tokens = z["request_id"], z["input_len"], z["output_len"], z["tokens"]
    except Exception as exc:  # a corrupt or foreign file: say which
        raise WorkloadError(f"{p}: not a token file of an exported trace ({exc})") from None
    if not (len(ids) == len(n_in) == len(n_out)) or int(n_in.sum() + n_out.sum()) != len(tokens):
        raise WorkloadError(f"{p}: its lengths do not add up to its tokens")
    total_in = int(n_in.sum())
    starts_in = np.concatenate(([0], np.cumsum(n_in)[:-1])) if len(ids) else []
    starts_out = total_in + (np.concatenate(([0], np.cumsum(n_out)[:-1])) if len(ids) else np.zeros(0))
    return {
        int(i): (tokens[a : a + k], tokens[int(b) : int(b) + m])
        for i, a, k, b, m in zip(ids.tolist(), starts_in, n_in.tolist(), starts_out, n_out.tolist())
    }


# --- reading ------------------------------------------------------------------------------------


def trace_files(location: Union[str, Path]) -> tuple[Path, Path]:
    """(header, data) paths of a trace: a folder holding both files, or the CSV itself with the
    header beside it."""
    p = Path(location)
    if p.is_dir():
        return p / HEADER_FILE, p / DATA_FILE
    return p.with_name(HEADER_FILE), p


def is_trace_v2(location: Union[str, Path]) -> bool:
    """Whether ``location`` is a v2 trace: a folder with a header, or a CSV whose first row is
    the v2 columns."""
    header, data = trace_files(location)
    if Path(location).is_dir():
        return header.is_file()
    try:
        with open(data, newline="", encoding="utf-8") as f:
            first = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return False
    return tuple(first[:_REQUIRED]) == COLUMNS[:_REQUIRED] or (
        "prefix_length" in first and all(c in first for c in _NAMED_REQUIRED)
    )


_INT_FIELDS = {f.name for f in fields(TraceRecord) if f.type in ("int", int)}


def _go_atoi(text: str) -> int:
    """Go's ``strconv.Atoi``/``ParseInt(s, 10, 64)``: optional sign, decimal digits only."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError
    return value


_GO_BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}


def _go_float(text: str) -> float:
    """Go's ``strconv.ParseFloat(s, 64)`` for decimal text (inf/nan spellings included)."""
    t = text.replace("_", "") if re.fullmatch(r"[+-]?[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?", text) else text
    low = t.lower().lstrip("+-")
    if low in ("inf", "infinity", "nan"):
        return float(t)
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", t):
        raise ValueError
    return float(t)


def _record(row: list[str], where: str) -> TraceRecord:
    values: dict[str, Any] = {}
    for i, name in enumerate(COLUMNS[:_REQUIRED]):
        text = row[i]
        try:
            if name == "streaming":
                if text not in _GO_BOOLS:
                    raise ValueError
                values[name] = _GO_BOOLS[text]
            elif name == "reason_ratio":
                values[name] = _go_float(text)
            elif name in _INT_FIELDS:
                values[name] = _go_atoi(text)
            else:
                values[name] = text
        except ValueError:
            kind = {"streaming": "true or false", "reason_ratio": "a number"}.get(name, "an integer")
            raise WorkloadError(f"{where}: {name}: expected {kind}, got {text!r}") from None
    values["status"] = row[20] if len(row) > 20 else "ok"
    values["error_message"] = row[21].strip() if len(row) > 21 else ""
    return TraceRecord(**values)


def _named_record(row: list[str], index: dict[str, int], where: str) -> TraceRecord:
    """A row of upstream's newer layout, read by column name (columns we do not model are left)."""
    if len(row) < len(index):
        raise WorkloadError(f"{where}: {len(row)} columns, expected {len(index)} (as the column row names)")
    values: dict[str, Any] = {}
    for f in fields(TraceRecord):
        i = index.get(f.name)
        if i is None:
            continue
        text = row[i]
        try:
            if f.name == "streaming":
                if text not in _GO_BOOLS:
                    raise ValueError
                values[f.name] = _GO_BOOLS[text]
            elif f.name == "reason_ratio":
                values[f.name] = _go_float(text) if text else 0.0
            elif f.name in _INT_FIELDS:
                values[f.name] = _go_atoi(text) if text or f.name in _NAMED_REQUIRED else 0
            else:
                values[f.name] = text.strip() if f.name == "error_message" else text
        except ValueError:
            kind = {"streaming": "true or false", "reason_ratio": "a number"}.get(f.name, "an integer")
            raise WorkloadError(f"{where}: {f.name}: expected {kind}, got {text!r}") from None
    if values.get("prefix_length", 0) < 0:
        raise WorkloadError(f"{where}: prefix_length: must be >= 0, got {values['prefix_length']}")
    return TraceRecord(**values)


def _header(text: str, path: Path) -> TraceHeader:
    """The header: version 2 decoded strictly, as BLIS reads it; version 3 (upstream's newer)
    for the keys we model, its goodput targets included, the rest left with a warning."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    version = doc.get("trace_version") if isinstance(doc, dict) else None
    if version == 3:
        known = {f.name for f in fields(TraceHeader)}
        left = sorted(set(doc) - known)
        if left:
            log.warning("%s: trace_version 3 keys not modelled here, left: %s", path, ", ".join(left))
        kept = {k: doc[k] for k in doc if k in known and k != "goodput_slo_targets"}
        header = decode(yaml.safe_dump(kept), TraceHeader, str(path)) if kept else TraceHeader()
        targets = targets_from_yaml(doc.get("goodput_slo_targets"), str(path))
        return replace(header, goodput_slo_targets=targets or None)
    if isinstance(version, int) and not isinstance(version, bool) and version not in TRACE_VERSIONS:
        raise WorkloadError(
            f"{path}: trace_version {version} is not supported (supported: 2, BLIS's at the reference, "
            "and 3, upstream's newer)"
        )
    return decode(text, TraceHeader, str(path))


def load_trace_v2(location: Union[str, Path], header: Union[str, Path, None] = None) -> TraceV2:
    """Read a v2 trace (a folder, or its CSV with the header beside it, or ``header`` where
    given); WorkloadError names the file, and the row (1 = the first after the column names)
    for a bad row. Upstream's newer layout (trace_version 3, a ``prefix_length`` column) reads too."""
    header_path, data_path = trace_files(location)
    if header is not None:
        header_path = Path(header)
    try:
        header_text = header_path.read_text("utf-8")
    except FileNotFoundError:
        raise WorkloadError(
            f"{header_path}: trace header not found (a v2 trace is a folder with {HEADER_FILE} and {DATA_FILE})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{header_path}: cannot read trace header ({exc})") from None
    header = _header(header_text, header_path)
    if header.mode and header.mode not in MODES:
        raise WorkloadError(f"{header_path}: mode: expected one of {', '.join(MODES)}, got {header.mode!r}")
    try:
        handle = open(data_path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise WorkloadError(f"{data_path}: trace data not found") from None
    except OSError as exc:
        raise WorkloadError(f"{data_path}: cannot read trace data ({exc.strerror})") from None
    records = []
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            first = next(reader, None)
            if first is None:
                raise WorkloadError(f"{data_path}: empty file; expected the column row: {','.join(COLUMNS)}")
            named = None  # upstream's newer layout: read by column name
            if tuple(first[:_REQUIRED]) != COLUMNS[:_REQUIRED] and "prefix_length" in first:
                named = {name: i for i, name in enumerate(first)}
                missing = [c for c in _NAMED_REQUIRED if c not in named]
                if missing:
                    raise WorkloadError(f"{data_path}: the column row lacks {', '.join(missing)}")
            for row in reader:
                where = f"{data_path}: row {len(records) + 1} (line {reader.line_num})"
                if named is not None:
                    records.append(_named_record(row, named, where))
                    continue
                if len(row) < _REQUIRED:
                    raise WorkloadError(f"{where}: {len(row)} columns, expected {len(COLUMNS)} ({','.join(COLUMNS)})")
                records.append(_record(row, where))
        except csv.Error as exc:
            raise WorkloadError(f"{data_path}: line {reader.line_num}: malformed CSV ({exc})") from None
        except UnicodeDecodeError:
            raise WorkloadError(f"{data_path}: not UTF-8 text") from None
    return TraceV2(header, tuple(records), "upstream" if named is not None else "reference")
