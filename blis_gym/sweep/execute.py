"""Running a sweep's points: one Ray task each (or a serial loop), journalled as they finish.

Points already in the output folder's journal are skipped, so a rerun after Ctrl-C (or a
crash of the driver) finishes the sweep. A Ray failure (a worker or node lost) gives that
point an error row but is not journalled, so the next run retries it.
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

from ..distributed import INSTALL_HINT, RaySession, cluster_cpus, need_ray
from ..errors import ConfigError
from ..fileio import write_atomic
from ..plan import cli_flags
from .point import run_point, summary_line
from .spec import Point, SweepSpec
from .table import SWEEP_COPY, Journal, read_journal, write_table

LOCAL_NODE = "local"
# Tasks in flight per worker: enough to keep workers busy, few enough to stop quickly on Ctrl-C.
_IN_FLIGHT_PER_WORKER = 2
_STARTUP_SWITCH_INTERVAL = 1e-4  # seconds


@dataclass
class SweepReport:
    """What a sweep did. ``seconds``: wall time of this run; ``compute_seconds``: time the points
    run here spent simulating (their sum; the rest of the wall time is Ray's and ours)."""

    out: Path
    total: int
    resumed: int  # points found finished in the journal
    ran: int = 0
    failures: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # the table, in point order
    seconds: float = 0.0
    compute_seconds: float = 0.0


def _task(point: Point) -> tuple[dict, str, float]:
    """A point's result, the node it ran on and its simulation time (s): the Ray task's body."""
    import ray

    started = time.perf_counter()
    result = run_point(point)
    return result, ray.get_runtime_context().get_node_id(), time.perf_counter() - started


def _entry(point: Point, result: dict, node: str, seconds: float) -> dict:
    return {"key": point.key, "point": point.index, "node": node, "seconds": round(seconds, 6), **result}


def _run_serial(pending: list[Point], record: Callable[[dict, bool], None]) -> None:
    for point in pending:
        started = time.perf_counter()
        result = run_point(point)
        record(_entry(point, result, LOCAL_NODE, time.perf_counter() - started), True)


def _run_ray(
    ray: Any, pending: list[Point], workers: Optional[int], embedded: bool, record: Callable[[dict, bool], None]
) -> None:
    remote = ray.remote(num_cpus=1, max_retries=0)(_task)

    def node_name(node_id: str) -> str:
        # Ray's node ids are new at each start: an embedded Ray's would make reruns differ.
        return LOCAL_NODE if embedded else node_id

    limit = (workers or cluster_cpus(ray)) * _IN_FLIGHT_PER_WORKER
    queue = list(reversed(pending))
    in_flight: dict[Any, Point] = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < limit:
                point = queue.pop()
                in_flight[remote.remote(point)] = point
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                point = in_flight.pop(ref)
                try:
                    result, node_id, seconds = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker or node was lost: retry next run
                    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                    record(
                        _entry(point, {"metrics": {}, "error": f"ray: {type(exc).__name__}: {first}"}, "", 0.0), False
                    )
                    continue
                record(_entry(point, result, node_name(node_id), seconds), True)
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=True)


class _LocalPoints(threading.Thread):
    """Runs points from the front of ``queue`` in this process until told to stop (after the
    point in hand), so that the seconds an embedded Ray takes to start are not idle."""

    def __init__(self, queue: list[Point], record: Callable[[dict, bool], None]) -> None:
        super().__init__(name="sweep-local-points", daemon=True)
        self.queue = queue
        self.record = record
        self.stopping = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while self.queue and not self.stopping.is_set():
                _run_serial([self.queue.pop(0)], self.record)
        except BaseException as exc:  # re-raised by finish(), in the caller's thread
            self.error = exc

    def finish(self) -> None:
        self.stopping.set()
        self.join()
        if self.error is not None:
            raise self.error


def _connect(address: str, workers: Optional[int], timeout_s: float) -> Any:
    """A RaySession joined to the cluster at ``address`` (ConfigError if it does not answer)."""
    session = RaySession(address, workers, timeout_s, what="blis sweep").start()
    try:
        session.wait()
    except BaseException:
        session.close()
        raise
    return session


def _run_on_ray(
    pending: list[Point], session: Any, workers: Optional[int], record: Callable[[dict, bool], None]
) -> None:
    """Ray tasks for ``pending``: on the cluster ``session`` joined, or (``session`` None) on an
    embedded Ray, which takes seconds to start: meanwhile a thread of this process runs points
    (the results are the same wherever a point runs)."""
    queue = list(pending)
    embedded = session is None
    if embedded:
        session = RaySession(workers=workers, what="blis sweep")
        local = _LocalPoints(queue, record)
        interval = sys.getswitchinterval()
        # Ray's start takes the GIL thousands of times: at the default 5 ms a turn, the
        # points thread would stretch it severalfold.
        sys.setswitchinterval(_STARTUP_SWITCH_INTERVAL)
        local.start()
        try:
            # In this thread: Ray's calls hang after an embedded start from another thread.
            session.start(background=False)
        finally:
            local.finish()
            sys.setswitchinterval(interval)
    try:
        ray = session.wait()
        if queue:
            _run_ray(ray, queue, workers, embedded, record)
    finally:
        if embedded:
            session.close()


def point_args(point: Point) -> str:
    """The point as ``blis run`` arguments (copy-pasteable)."""
    return shlex.join(cli_flags(replace(point.run_options(), log="warn")))


def run_sweep(
    spec: SweepSpec,
    out: Path,
    *,
    workers: Optional[int] = None,
    address: str = "",
    serial: bool = False,
    timeout_s: float = 10.0,
    progress: Optional[Callable[[int, int, int], None]] = None,
) -> SweepReport:
    """Run the points of ``spec`` not yet journalled in ``out``; write the table when all are done.

    ``progress(done, total, failed)`` is called as points finish (``done`` counts resumed ones).
    Ctrl-C stops the sweep: finished points stay journalled and ``KeyboardInterrupt`` propagates.
    """
    try:
        import pyarrow  # noqa: F401  (fail before running anything)
    except ImportError:
        raise ConfigError(f"blis sweep writes Parquet with pyarrow: {INSTALL_HINT}") from None
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    if not serial:
        need_ray("blis sweep (or --serial, which runs without Ray)")
    # A cluster that does not answer fails here, before anything is written.
    session = _connect(address, workers, timeout_s) if address and not serial else None
    try:
        return _sweep(spec, out, session, workers, serial, progress)
    finally:
        if session is not None:
            session.close()


def _sweep(
    spec: SweepSpec,
    out: Path,
    session: Any,
    workers: Optional[int],
    serial: bool,
    progress: Optional[Callable[[int, int, int], None]],
) -> SweepReport:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create: {exc.strerror}") from None
    write_atomic(str(out / SWEEP_COPY), spec.text, "--out")
    entries = read_journal(out)
    wanted = {p.key for p in spec.points}
    entries = {k: e for k, e in entries.items() if k in wanted}
    pending = [p for p in spec.points if p.key not in entries]
    report = SweepReport(out, len(spec.points), len(spec.points) - len(pending))
    failed = sum(1 for e in entries.values() if e.get("error"))
    started = time.perf_counter()

    def record(entry: dict, durable: bool) -> None:
        nonlocal failed
        if durable:
            journal.append(entry)
        entries[entry["key"]] = entry
        report.ran += 1
        report.compute_seconds += entry["seconds"]
        failed += bool(entry["error"])
        if progress is not None:
            progress(report.resumed + report.ran, report.total, failed)

    if progress is not None:
        progress(report.resumed, report.total, failed)
    if pending:
        journal = Journal(out)
        try:
            if serial:
                _run_serial(pending, record)
            else:
                _run_on_ray(pending, session, workers, record)
        finally:
            journal.close()
    rows = []
    for point in spec.points:
        entry = entries[point.key]
        rows.append(
            {
                "point": point.index,
                **point.axis_values,
                "blis_run_args": point_args(point),
                **entry["metrics"],
                "error": entry["error"],
                "node": entry["node"],
            }
        )
        if entry["error"]:
            report.failures.append(summary_line(point.index, point.axis_values, entry["error"]))
    report.files = write_table(out, spec.columns, rows)
    report.rows = rows
    report.seconds = time.perf_counter() - started
    return report
