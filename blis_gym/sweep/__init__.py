"""``blis sweep``: many ``blis run`` configurations, one Ray task each, into one tidy table.

``spec`` reads the sweep file into points, ``point`` runs one, ``execute`` spreads them over
Ray (or runs them in turn) with a resumable journal, ``table`` writes Parquet and CSV, and
``plot`` draws a chart per metric.
"""

from .execute import SweepReport, run_sweep
from .spec import Point, SweepSpec, load_sweep

__all__ = ["Point", "SweepReport", "SweepSpec", "load_sweep", "run_sweep"]
