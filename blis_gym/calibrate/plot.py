"""The calibration chart: simulated against real latency per request, and both CDFs."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .compare import METRIC_NAMES, CalibrationPairs


def check_plot_available() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'blis-gym[plot]'") from None


def plot_calibration(pairs: CalibrationPairs, path: Path) -> None:
    """Draw ``path``: per metric, simulated against real latency (ms) per request with the
    y = x line (top row), and the real and simulated CDFs (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in METRIC_NAMES if getattr(pairs, n).real]
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7.6), squeeze=False)
    for col, name in enumerate(names):
        pair = getattr(pairs, name)
        real = [v / 1e3 for v in pair.real]
        sim = [v / 1e3 for v in pair.sim]
        ax = axes[0][col]
        ax.scatter(real, sim, s=9, alpha=0.6)
        low, high = min(real + sim), max(real + sim)
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="y = x")
        ax.set_xlabel(f"real {name} (ms)")
        ax.set_ylabel(f"simulated {name} (ms)")
        ax.set_title(f"{name}: {len(real)} requests", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax = axes[1][col]
        for label, values in (("real", real), ("simulated", sim)):
            xs = sorted(values)
            ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=label)
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("fraction of requests")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    try:
        fig.savefig(tmp, dpi=90)
        tmp.replace(path)  # a finished chart or none
    except OSError as exc:
        raise ConfigError(f"--plot {path}: cannot write: {exc.strerror}") from None
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
