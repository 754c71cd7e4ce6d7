"""``blis calibrate``: how closely the simulator reproduces latencies observed on a real server.

:mod:`.replay` replays a real-mode trace and pairs each request with its simulated twin;
:mod:`.compare` holds the calibration maths (BLIS's, plus ITL); :mod:`.plot` draws the chart.
"""

from .compare import CalibrationReport, format_table
from .replay import Calibration, calibrate

__all__ = ["Calibration", "CalibrationReport", "calibrate", "format_table"]
