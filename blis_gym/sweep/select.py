"""A sweep's ``select:``: rank one axis's values, validate the best few, name the winner.

Training: every value of the ``among`` axis is scored by the mean of ``metric`` over its points
(a value with a failed point is out). Validation: the ``finalists`` best run again as a second
sweep, in ``OUT/validation/``, with the ``validate`` axes' values in place of the originals
(say, seeds never seen in training); the lowest mean there wins. ``OUT/selection.csv`` has
both rounds; with ``bundle:`` the winning ``routing_scorers`` profile is written as a policy
bundle (``--policy-config``) that records how it was chosen.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError
from ..fileio import write_atomic
from ..policies.scorers import parse_scorers
from .spec import SweepSpec

SELECTION_CSV = "selection.csv"
VALIDATION_DIR = "validation"


@dataclass
class Standing:
    """One candidate value's score in one round: the metric's mean over its points."""

    value: Any
    mean: float
    points: int


@dataclass
class SelectionReport:
    training: list[Standing]
    validation: list[Standing]
    winner: Any
    excluded: list[Any] = field(default_factory=list)  # values with a failed point
    files: list[Path] = field(default_factory=list)


def rank(rows: Sequence[Mapping[str, Any]], among: str, metric: str) -> tuple[list[Standing], list[Any]]:
    """Candidates best first (ties keep axis order), and those left out for a failed point."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[among], []).append(row)
    standings, excluded = [], []
    for value, members in groups.items():
        if any(r.get("error") for r in members) or any(not math.isfinite(float(r[metric])) for r in members):
            excluded.append(value)
            continue
        standings.append(Standing(value, sum(float(r[metric]) for r in members) / len(members), len(members)))
    standings.sort(key=lambda s: s.mean)  # stable: equal means keep the axis order
    return standings, excluded


def bundle_text(spec: SweepSpec, report: SelectionReport) -> str:
    """The winning scorer profile as a policy bundle, with how it was chosen as comments."""
    sel = spec.selection
    assert sel is not None
    lines = [
        f"# Chosen by `blis sweep {spec.path}`: the {sel.among} value with the lowest mean {sel.metric},",
        f"# {len(report.training)} candidates on {report.training[0].points} points each, the best "
        f"{len(report.validation)} again on {report.validation[0].points} validation points each.",
    ]
    best_trained = report.training[: len(report.validation)]
    for stage, standings in (("training", best_trained), ("validation", report.validation)):
        lines.append(f"# {stage}: " + "; ".join(f"{s.value} {s.mean:.2f}" for s in standings))
    lines += ["routing:", "  policy: weighted", "  scorers:"]
    for c in parse_scorers(str(report.winner), f"{spec.path}: select"):
        lines += [f"    - name: {c.name}", f"      weight: {c.weight:g}"]
    return "\n".join(lines) + "\n"


def _csv(report: SelectionReport, metric: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["round", "rank", "value", f"mean_{metric}", "points", "winner"])
    for stage, standings in (("training", report.training), ("validation", report.validation)):
        for i, s in enumerate(standings, 1):
            w.writerow([stage, i, s.value, repr(s.mean), s.points, int(stage == "validation" and i == 1)])
    return buf.getvalue()


def run_selection(
    spec: SweepSpec,
    out: Path,
    rows: Sequence[Mapping[str, Any]],
    run: Callable[[SweepSpec, Path], Sequence[Mapping[str, Any]]],
) -> SelectionReport:
    """Rank ``rows`` (the sweep's table), run the finalists' validation sweep with ``run(spec,
    folder) -> rows``, and write ``selection.csv`` (and the bundle)."""
    sel = spec.selection
    assert sel is not None
    training, excluded = rank(rows, sel.among, sel.metric)
    if not training:
        raise ConfigError(f"sweep file {spec.path}: select: every {sel.among} value had a failed point")
    finalists = [s.value for s in training[: sel.finalists]]
    validation_spec = spec.restricted(sel.among, finalists, sel.validate)
    validation, failed = rank(run(validation_spec, out / VALIDATION_DIR), sel.among, sel.metric)
    excluded += failed
    if not validation:
        raise ConfigError(f"sweep file {spec.path}: select: every finalist failed in validation")
    report = SelectionReport(training, validation, validation[0].value, excluded)
    path = out / SELECTION_CSV
    write_atomic(str(path), _csv(report, sel.metric), "--out")
    report.files.append(path)
    if sel.bundle:
        path = out / sel.bundle
        write_atomic(str(path), bundle_text(spec, report), "--out")
        report.files.append(path)
    return report
