"""``blis sweep --plot``: one chart per metric against the first axis, a line per value of the second.

Further axes give one panel per combination of their values (small multiples), except
``seed``, which is averaged with its min-max range shaded: a capacity planner sees where
TTFT p99 breaks as the load grows. Failed points are left out. Charts go to
``DIR/plots/<metric>.png``, and six key metrics (rows) by panel (columns) to
``DIR/plots/overview.png``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from .metrics import EXTRA_METRICS, METRICS

OVERVIEW = ("ttft_p99_ms", "ttft_mean_ms", "e2e_p99_ms", "itl_mean_ms", "responses_per_sec", "rejected_requests")
PLOTS_DIR = "plots"
AVERAGED = ("seed",)
MAX_OVERVIEW_PANELS = 4


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _series(rows: Sequence[Mapping[str, Any]], x_col: str, split: str, metric: str):
    """{series label: (xs, means, lows, highs)} over the rows with a finite value of ``metric``."""
    groups: dict[str, dict[Any, list[float]]] = {}
    for r in rows:
        value = r.get(metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        label = f"{split}={r[split]}" if split else metric
        groups.setdefault(label, {}).setdefault(r[x_col], []).append(float(value))
    out = {}
    for label, by_x in groups.items():
        xs = list(by_x)
        vals = [by_x[x] for x in xs]
        out[label] = (xs, [sum(v) / len(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals])
    return out


def _draw(ax, rows, x_col: str, split: str, metric: str, categories: list) -> None:
    for label, (xs, mean, low, high) in _series(rows, x_col, split, metric).items():
        pos = xs if not categories else [categories.index(x) for x in xs]
        ax.plot(pos, mean, marker="o", label=label)
        if any(lo != hi for lo, hi in zip(low, high)):
            ax.fill_between(pos, low, high, alpha=0.15)
    if categories:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories], rotation=20, fontsize=8)
    ax.set_xlabel(x_col)
    ax.set_title(metric, fontsize=10)
    ax.grid(alpha=0.3)


def _panels(rows: Sequence[Mapping[str, Any]], facets: Sequence[str]) -> list[tuple[str, list]]:
    """(title, rows) per combination of the facet axes' values, in point order."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(r[f] for f in facets), []).append(r)
    return [(", ".join(f"{f}={v}" for f, v in zip(facets, key)), group) for key, group in groups.items()]


def _grid(plt, n_rows: int, n_cols: int, width: float, height: float):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False)
    return fig, axes


def plot_sweep(out: Path, axis_columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Draw the charts from the table's ``rows``; returns the files written (the overview last)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'blis-gym[plot]'") from None
    ok = [r for r in rows if not r.get("error")]
    if not ok:
        raise ConfigError("--plot: every point failed; nothing to draw")
    x_col = axis_columns[0]
    split = axis_columns[1] if len(axis_columns) > 1 and axis_columns[1] not in AVERAGED else ""
    facets = [c for c in axis_columns[1:] if c != split and c not in AVERAGED]
    xs = list(dict.fromkeys(r[x_col] for r in ok))
    categories = [] if _numeric(xs) else xs
    panels = _panels(ok, facets)
    metrics = [m for m in (*METRICS, *EXTRA_METRICS) if any(isinstance(r.get(m), (int, float)) for r in ok)]
    metrics += sorted({k for r in ok for k in r if k.startswith("slo_")})
    folder = out / PLOTS_DIR
    folder.mkdir(exist_ok=True)
    files = []

    def draw(ax, metric: str, title: str, group: list) -> None:
        _draw(ax, group, x_col, split, metric, categories)
        if title:
            ax.set_title(f"{metric}\n{title}", fontsize=9)

    for metric in metrics:
        fig, axes = _grid(plt, 1, len(panels), 5.5, 4)
        for ax, (title, group) in zip(axes[0], panels):
            draw(ax, metric, title, group)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        files.append(folder / f"{metric}.png")
        fig.savefig(files[-1], dpi=90)
        plt.close(fig)
    shown = panels[:MAX_OVERVIEW_PANELS]
    fig, axes = _grid(plt, len(OVERVIEW), len(shown), 5, 3)
    for i, metric in enumerate(OVERVIEW):
        for j, (title, group) in enumerate(shown):
            draw(axes[i][j], metric, title, group)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    files.append(folder / "overview.png")
    fig.savefig(files[-1], dpi=80)
    plt.close(fig)
    return files
