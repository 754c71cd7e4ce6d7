"""``results.png``: the comparison ``blis evaluate`` makes, drawn to be read at a glance.

Three bar panels (TTFT mean, TTFT p99, E2E mean: the mean over episodes with its
95% confidence interval, on an axis zoomed to the values so that a 10%
difference shows) and the TTFT tail: the complementary CDF P(TTFT > x) on log
axes, where p99 lives. Labels are short (a model's run folder, a baseline's
name); the lookahead oracle is drawn apart (hatched, dashed) since it is a
clairvoyant yardstick, not a contender.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

ORACLES = ("lookahead",)
PANELS = (("ttft_mean_ms", "TTFT mean (ms)"), ("ttft_p99_ms", "TTFT p99 (ms)"), ("e2e_mean_ms", "E2E mean (ms)"))


def short_label(name: str) -> str:
    """``baseline:weighted`` -> ``weighted``; ``runs/ppo/model.zip`` -> ``ppo``."""
    if name.startswith("baseline:"):
        return name[len("baseline:") :]
    path = Path(name)
    if path.name == "model.zip" and path.parent.name:
        return path.parent.name
    return path.stem or name


def _zoomed(ax, lows: np.ndarray, highs: np.ndarray) -> None:
    lo, hi = float(lows.min()), float(highs.max())
    pad = max(hi - lo, 1e-9 + abs(hi) * 0.02) * 0.15
    ax.set_ylim(max(lo - pad, 0.0), hi + pad)


def plot_results(results: Sequence, ci95, path: Path) -> bool:
    """Draw ``results`` (``PolicyResult``s) to ``path``; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    except ImportError:
        return False
    labels = [short_label(r.name) for r in results]
    oracle = [lab in ORACLES for lab in labels]
    colors = [plt.cm.tab10(i % 10) for i in range(len(results))]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.8), gridspec_kw={"width_ratios": [1, 1, 1, 1.4]})
    x = np.arange(len(results))
    for ax, (key, title) in zip(axes[:3], PANELS):
        means = np.array([np.mean([e[key] for e in r.episodes]) for r in results])
        errs = np.array([ci95([e[key] for e in r.episodes]) for r in results])
        bars = ax.bar(x, means, yerr=errs, capsize=4, color=colors, edgecolor="black", linewidth=0.6)
        for bar, is_oracle in zip(bars, oracle):
            if is_oracle:
                bar.set_hatch("//")
                bar.set_alpha(0.6)
        for xi, m, e in zip(x, means, errs):
            ax.annotate(
                f"{m:.0f}", (xi, m + e), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points"
            )
        _zoomed(ax, means - errs, means + errs)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title + "\n(mean of episodes, 95% CI; axis not from 0)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    ax = axes[3]
    for label, r, color, is_oracle in zip(labels, results, colors, oracle):
        xs = np.sort(np.asarray(r.ttfts_ms, dtype=float))
        xs = xs[xs > 0]
        if not len(xs):
            continue
        tail = 1.0 - np.arange(len(xs)) / len(xs)  # P(TTFT >= x), down to 1/n
        ax.step(
            xs,
            tail,
            where="post",
            color=color,
            linestyle="--" if is_oracle else "-",
            linewidth=1.2,
            label=label + (" (oracle)" if is_oracle else ""),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axhline(0.01, color="grey", linewidth=0.8, linestyle=":")
    ax.annotate(
        "p99", (1.0, 0.01), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=8, color="grey"
    )
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("P(TTFT > x)")
    ax.set_title("TTFT tail (all episodes pooled)", fontsize=9)
    ax.grid(which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True
