"""The sweep's output folder: the journal of finished points, and the tidy results table.

``DIR/points.jsonl`` gets one line per finished point as it finishes (one ``write`` each,
so a killed sweep leaves whole lines); a rerun into the same folder reads it and skips
those points. When every point is done, ``DIR/results.parquet`` and ``DIR/results.csv``
are written from it in point order, so an interrupted-and-resumed sweep gives the same
table as an uninterrupted one.

Columns: ``point``, the axis options, ``blis_run_args`` (the point as ``blis run``
arguments), the cluster block's metrics, ``rejected_requests``, ``fitness`` (points with
fitness weights), per-SLO-class figures (``slo_<class>_<figure>``, runs with two or more
classes), then ``error`` (empty when the point ran) and ``node``: the id of the Ray node that
ran the point on a cluster (``--address``), ``local`` for this machine (the embedded Ray, or
``--serial``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConfigError
from ..fileio import write_atomic
from .metrics import EXTRA_METRICS, METRICS

JOURNAL = "points.jsonl"
PARQUET = "results.parquet"
CSV = "results.csv"
SWEEP_COPY = "sweep.yaml"


def read_journal(out: Path) -> dict[str, dict]:
    """Finished points by key. A torn last line (a sweep killed mid-write) is ignored."""
    path = out / JOURNAL
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                done[entry["key"]] = entry
    return done


class Journal:
    """Appends finished points to ``DIR/points.jsonl``, one whole line per ``write``."""

    def __init__(self, out: Path) -> None:
        self.path = out / JOURNAL
        try:
            # A torn last line from a killed run must not glue onto the next entry.
            if self.path.is_file() and self.path.stat().st_size:
                with open(self.path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    torn = f.read(1) != b"\n"
            else:
                torn = False
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot write {JOURNAL}: {exc.strerror}") from None
        if torn:
            os.write(self.fd, b"\n")

    def append(self, entry: Mapping[str, Any]) -> None:
        os.write(self.fd, (json.dumps(entry) + "\n").encode())

    def close(self) -> None:
        os.close(self.fd)


def columns(axis_columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The table's columns in order: inputs, the fixed metrics, per-SLO figures seen, error, node."""
    slo = sorted({k for row in rows for k in row if k.startswith("slo_")})
    return ["point", *axis_columns, "blis_run_args", *METRICS, *EXTRA_METRICS, *slo, "error", "node"]


def _cell(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def write_table(out: Path, axis_columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[Path]:
    """``results.parquet`` and ``results.csv`` from ``rows`` (sorted by point); returns the paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: r["point"])
    cols = columns(axis_columns, rows)
    table = pa.table({c: pa.array([_cell(r.get(c)) for r in rows]) for c in cols})
    parquet = out / PARQUET
    tmp = out / f".{PARQUET}.tmp"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, parquet)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"--out {out}: cannot write {PARQUET}: {exc.strerror or exc}") from None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else _text(r.get(c)) for c in cols])
    write_atomic(str(out / CSV), buf.getvalue(), "--out")
    return [parquet, out / CSV]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(repr(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)
