"""The ITL file of ``blis observe --record-itl``: when each streamed chunk arrived (BLIS's format,
written by ``blis observe``, read by ``blis calibrate`` as BLIS's ``LoadITL`` does).

A CSV with the header ``request_id,chunk_index,timestamp_us`` and one row per chunk (every SSE
``data:`` line but ``[DONE]``, the usage chunk included), ``chunk_index`` from 0 (the first
chunk: TTFT) and ``timestamp_us`` in µs since the Unix epoch, the trace's clock. It lies beside
the trace, named after its data file (``trace_data.itl.csv``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence, Union

from ..errors import WorkloadError
from ..fileio import open_text, write_atomic

ITL_FILE = "trace_data.itl.csv"
ITL_COLUMNS = ("request_id", "chunk_index", "timestamp_us")


def itl_csv(rows: Iterable[tuple[int, Sequence[int]]]) -> tuple[str, int]:
    """The file's text for ``(request id, chunk times)`` pairs, and how many chunk rows it has."""
    out = [",".join(ITL_COLUMNS)]
    n = 0
    for rid, times in rows:
        prefix = f"{rid},"
        out.extend(f"{prefix}{i},{t}" for i, t in enumerate(times))
        n += len(times)
    return "\n".join(out) + "\n", n


def write_itl(path: Union[str, Path], rows: Iterable[tuple[int, Sequence[int]]], flag: str = "--out") -> int:
    """Write the ITL file (whole or not at all); returns the number of chunk rows."""
    text, n = itl_csv(rows)
    write_atomic(str(path), text, flag)
    return n


def itl_path(trace: Union[str, Path]) -> Path:
    """Where ``blis observe`` puts the ITL file of ``trace`` (a folder, or its data CSV)."""
    p = Path(trace)
    return p / ITL_FILE if p.is_dir() or not p.suffix else p.with_name(p.stem + ".itl.csv")


def load_itl(path: Union[str, Path]) -> dict[int, list[int]]:
    """Chunk times (µs) of each request in an ITL file, in chunk order. Raises WorkloadError
    (one line naming the file and row) for a missing file, another header, a value that is not
    a non-negative integer, or a chunk given twice."""
    where = str(path)
    chunks: dict[int, dict[int, int]] = {}
    try:
        with open_text(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header[:3]) != ITL_COLUMNS:
                raise WorkloadError(f"{where}: not an ITL file: the first row must be {','.join(ITL_COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < 3:
                    raise WorkloadError(f"{where}: row {line} has {len(row)} columns, expected 3")
                try:
                    rid, index, ts = (int(v) for v in row[:3])
                except ValueError:
                    raise WorkloadError(
                        f"{where}: row {line}: values must be integers, got {','.join(row[:3])}"
                    ) from None
                if rid < 0 or index < 0 or ts < 0:
                    raise WorkloadError(f"{where}: row {line}: values must be >= 0, got {rid},{index},{ts}")
                per = chunks.setdefault(rid, {})
                if index in per:
                    raise WorkloadError(f"{where}: row {line}: chunk {index} of request {rid} given twice")
                per[index] = ts
    except OSError as exc:
        raise WorkloadError(f"{where}: cannot read the ITL file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise WorkloadError(f"{where}: not an ITL file (not UTF-8 text)") from None
    return {rid: [per[i] for i in sorted(per)] for rid, per in chunks.items()}
